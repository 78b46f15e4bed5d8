// Starts an agent through `--remote 'sh -c'` and prints its pid, then waits to be killed: a front end
// that dies without a word (the agent must notice its stdin closing and end).
import { startRemoteAgent } from '../../src/remote/index.js';

const agentPath = process.argv[2];
if (agentPath === undefined) throw new Error('usage: agent-holder AGENT_PATH');
const { hello } = await startRemoteAgent({ command: 'sh -c', agentPath });
process.stdout.write(`${hello.pid}\n`);
setInterval(() => undefined, 1 << 30);
