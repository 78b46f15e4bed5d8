// Capture on another machine through tlstap-agent (docs/agent.md): the protocol, the connection,
// starting the agent through --remote CMD, and the file view discovery and the ELF reader read through.
export { AGENT_PROTOCOL, OP, MARK, FrameDecoder, ProtocolError, encodeFrame, encodeRequest, decodeResponse } from './protocol.js';
export type { Frame, FrameKind, AgentHello, RemoteStat, RemoteDirent } from './protocol.js';
export { AgentConnection, AgentError, AgentGoneError } from './connection.js';
export { startRemoteAgent, probeRemote, sayHello, agentBinary, shellQuote, remoteShellCommand, RemoteError } from './launch.js';
export type { RemoteOptions, RemoteTarget, RemoteAgent } from './launch.js';
export { AgentView } from './agent-view.js';
export { localView, FileTooLargeError } from './view.js';
export type { FileView, ViewStat, ViewDirent } from './view.js';
