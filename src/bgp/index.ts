// BGP announcement of the VIPs through BIRD 2: the `bgp` config section, the generated BIRD
// configuration, BIRD as a supervised child, and the speaker that decides what is announced.
export { birdConfig, STATIC_PROTOCOL } from './bird-config.js';
export { birdCommand, parseProtocols, parseReplyLines, type BirdProtocol, type BirdReply } from './bird-control.js';
export { BirdProcess, type BirdProcessStatus, type BirdState } from './bird-process.js';
export { backendsTakingFlows, vipEligibility, type Forwarding, type VipEligibility } from './eligibility.js';
export { BgpSpeaker, type AnnouncementStatus, type BgpSpeakerOptions, type BgpStatus, type BirdFactory, type BirdLike, type NeighbourStatus } from './speaker.js';
export { checkBgpSemantics, defaultNeighbourName } from './validate.js';
export type { BgpConfig, BgpNeighbour, BgpRoute, Community } from './types.js';
