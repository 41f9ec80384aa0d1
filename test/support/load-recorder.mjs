// `node --import ./load-recorder.mjs ...`: appends the URL of every module the process resolves
// to the file named by SWITCHBOARD_LOAD_LOG (tests check what a command loads).
import { register } from 'node:module';

register('./load-recorder-hooks.mjs', import.meta.url);
