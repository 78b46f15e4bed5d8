// commander, loaded with require: its ES module wrapper (esm.mjs) makes node translate the CommonJS
// package for the ES module loader, which took ~10 ms of every start. The classes are the same.
import { createRequire } from 'node:module';
import type * as Commander from 'commander';

const commander = createRequire(import.meta.url)('commander') as typeof Commander;

/** commander's Command. */
export const Command = commander.Command;
/** A command. */
export type Command = Commander.Command;
/** commander's Option. */
export const Option = commander.Option;
/** An option. */
export type Option = Commander.Option;
/** commander's InvalidArgumentError. */
export const InvalidArgumentError = commander.InvalidArgumentError;
