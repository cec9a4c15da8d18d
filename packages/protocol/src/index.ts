export * from './codes.js';
export * from './channels.js';
export * from './frames.js';
export * from './codec.js';
