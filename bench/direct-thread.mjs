// worker_threads load plain JavaScript: register tsx in the thread, then run direct-thread.ts
// (the same way the lxcq worker's piscina threads load their TypeScript).
import { tsImport } from 'tsx/esm/api';

await tsImport('./direct-thread.ts', import.meta.url);
