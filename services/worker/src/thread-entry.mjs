// piscina loads plain JavaScript: this entry registers tsx in the thread, then loads thread.ts,
// so the worker runs from its TypeScript sources with no build step (in tests and in production).
import { tsImport } from 'tsx/esm/api';

const mod = await tsImport('./thread.ts', import.meta.url);
export default mod.default;
