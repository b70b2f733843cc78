export { BerthClient, BerthError } from './client.js';
export type { ClientOptions, WebSocketCtor, WebSocketLike } from './client.js';
export { EventStream, isAction } from './stream.js';
export type { StreamOptions } from './stream.js';
export { AutomationClient } from './automation.js';
export type { InitializeOptions } from './automation.js';
export type * from './types.js';
