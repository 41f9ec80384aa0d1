// Public surface of libs/threads: worker threads on modules of ours, from the sources or the build.
export { startModuleWorker } from './module-worker.ts';
