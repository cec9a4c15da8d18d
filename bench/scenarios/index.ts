/** The suite, in the order. */
import type { Scenario } from '../lib/kit.js';
import { fanout } from './fanout.js';
import { inbox } from './inbox.js';
import { memory } from './memory.js';
import { p2p } from './p2p.js';
import { routing } from './routing.js';
import { scale } from './scale.js';
import { seeds } from './seeds.js';
import { storm } from './storm.js';

export const SCENARIOS: Scenario[] = [storm, seeds, fanout, p2p, memory, routing, inbox, scale];
