// worker_threads entry for the benchmark: loads the TS sources through tsx.
import { parentPort, workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

const { cycles } = await tsImport('./cycles.ts', import.meta.url);
parentPort.postMessage(cycles(workerData));
