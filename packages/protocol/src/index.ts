export * from './codes.js';
export * from './channels.js';
export * from './frames.js';
export * from './codec.js';

/** Protocol version spoken by this package. */
export const PROTOCOL_VERSION = 1;
