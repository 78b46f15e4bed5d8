// pcapng output: TLS plaintext as synthesized TCP/IP streams that Wireshark dissects directly.

export { createPcapngSink, createPcapngStreamSink, wiresharkCommand } from './sink.js';
export type { PcapngSink, PcapngSinkOptions } from './sink.js';
export type { DecodeAs, StreamProtocol } from './tcp.js';
