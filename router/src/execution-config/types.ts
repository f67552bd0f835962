/**
 * The execution config: the JSON `wgc router compose` (and our `edfs compose`) writes. We read
 * only what the engine uses; unknown fields are ignored so configs from newer composers still load.
 */
export interface TypeFieldJson {
  typeName: string;
  fieldNames?: string[];
  externalFieldNames?: string[];
}

export interface RequiredFieldJson {
  typeName: string;
  fieldName?: string;
  selectionSet: string;
  disableEntityResolver?: boolean;
}

export interface NatsEventConfigurationJson {
  engineEventConfiguration?: { providerId?: string; type?: string; typeName?: string; fieldName?: string };
  subjects?: string[];
  streamConfiguration?: { consumerName?: string; streamName?: string; consumerInactiveThreshold?: number };
}

export interface KafkaEventConfigurationJson {
  engineEventConfiguration?: { providerId?: string; type?: string; typeName?: string; fieldName?: string };
  topics?: string[];
}

export interface DataSourceConfigurationJson {
  kind?: string; // GRAPHQL | PUBSUB (protobuf JSON omits the default GRAPHQL)
  id: string;
  rootNodes?: TypeFieldJson[];
  childNodes?: TypeFieldJson[];
  keys?: RequiredFieldJson[];
  requires?: RequiredFieldJson[];
  provides?: RequiredFieldJson[];
  requestTimeoutSeconds?: string | number;
  customGraphql?: {
    fetch?: { url?: { staticVariableContent?: string }; method?: string };
    upstreamSchema?: { key?: string };
  };
  customEvents?: { nats?: NatsEventConfigurationJson[]; kafka?: KafkaEventConfigurationJson[] };
  entityInterfaces?: { interfaceTypeName: string; concreteTypeNames?: string[] }[];
  interfaceObjects?: { interfaceTypeName: string; concreteTypeNames?: string[] }[];
}

export interface FieldConfigurationJson {
  typeName: string;
  fieldName: string;
  argumentsConfiguration?: { name: string; sourceType?: string }[];
  subscriptionFilterCondition?: unknown;
  /**
   * `@authenticated` / `@requiresScopes` on the field, or on the type it returns (composition
   * flattens type-level directives onto every field of that type). `requiredOrScopes` is an OR
   * of ANDs; scopes imply authentication.
   */
  authorizationConfiguration?: {
    requiresAuthentication?: boolean;
    requiredOrScopes?: { requiredAndScopes?: string[] }[];
  };
}

export interface ExecutionConfigJson {
  version?: string;
  engineConfig: {
    datasourceConfigurations: DataSourceConfigurationJson[];
    fieldConfigurations?: FieldConfigurationJson[];
    graphqlSchema: string;
    graphqlClientSchema?: string;
    stringStorage?: Record<string, string>;
  };
  subgraphs?: { id: string; name: string; routingUrl?: string }[];
}
