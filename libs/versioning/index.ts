export { DataAxis, type NewVersion, type DataOperation } from './data-axis.ts';
export { ConfigAxis, type Actor, type RolloutRequest } from './config-axis.ts';
