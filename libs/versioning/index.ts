export { DataAxis, type NewVersion } from './data-axis.ts';
export { ConfigAxis, type Actor } from './config-axis.ts';
export { eventChange, rejectionKey, type ObjectRejection } from './object-rejection.ts';
