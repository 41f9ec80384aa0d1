export {
  DataAxis,
  type NewVersion,
  type DataOperation,
  type PreparedEvent,
  type RestoreOptions,
} from './data-axis.ts';
export { ConfigAxis, type Actor, type RolloutRequest } from './config-axis.ts';
