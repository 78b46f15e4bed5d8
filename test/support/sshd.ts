// A private OpenSSH server for tests: its own host key, one authorized client key, a random port on
// 127.0.0.1, all in a temporary directory; `command` is the ssh client line that reaches root there.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './nginx.js';

/** Debian's openssh-server (scripts/setup.sh installs it). */
export const SSHD = '/usr/sbin/sshd';

/** A running private sshd. */
export interface PrivateSshd {
  port: number;
  /** `ssh … root@127.0.0.1`: runs its last argument as a shell command there. */
  command: string;
  stop(): Promise<void>;
}

function keygen(path: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

/** Starts sshd on a free port; resolves once it accepts a command. */
export async function startSshd(): Promise<PrivateSshd> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: install openssh-server (bash scripts/setup.sh)`);
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-sshd-'));
  keygen(join(dir, 'host_key'));
  keygen(join(dir, 'client_key'));
  spawnSync('cp', [join(dir, 'client_key.pub'), join(dir, 'authorized_keys')]);
  // sshd refuses to start without its privilege separation directory (made by its init script).
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  let child: ChildProcess | undefined;
  let log = '';
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_key')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    child = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    const command =
      `ssh -i ${join(dir, 'client_key')} -p ${port} -o BatchMode=yes -o StrictHostKeyChecking=no ` +
      '-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@127.0.0.1';
    for (let i = 0; i < 50; i++) {
      const r = spawnSync('/bin/sh', ['-c', `${command} 'echo ok'`], { encoding: 'utf8', timeout: 10_000 });
      if (r.stdout.trim() === 'ok') {
        const running = child;
        return {
          port,
          command,
          stop: async () => {
            if (running.exitCode === null) {
              const exited = new Promise((resolve) => running.once('exit', resolve));
              running.kill('SIGTERM');
              await exited;
            }
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      if (child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    child.kill('SIGKILL');
    if (attempt >= 2) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`sshd did not accept a command: ${log}`);
    }
  }
}
