export {
  composeSupergraph,
  type ComposeOptions,
  type ComposeResult,
  type CompositionError,
  type SubgraphInput,
  type SubscriptionProtocol,
  type WebsocketSubprotocol,
} from './compose/compose.js';
export {
  API_VERSION,
  ComposeInputError,
  loadComposeInputs,
  readComposeSources,
  selectSubgraphs,
  subgraphInputFromManifest,
  type ComposeSources,
  type ConfigMapManifest,
  type EventProviderManifest,
  type LoadOptions,
  type SubgraphManifest,
  type SupergraphManifest,
} from './compose/sources.js';
export {
  InvalidLabelSelectorError,
  matchesLabelSelector,
  type LabelSelector,
  type LabelSelectorRequirement,
} from './compose/label-selector.js';
