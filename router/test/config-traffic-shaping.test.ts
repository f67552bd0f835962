/**
 * router.yaml: request deduplication under `traffic_shaping` (the spirit of Apollo's
 * `deduplicate_query` and Hive Router's inbound dedupe): subgraph requests shared by default,
 * switchable for all subgraphs and per subgraph; the inbound variant off by default; misspelt
 * keys and wrong types refused at start naming the key to fix.
 */
import { describe, expect, it } from '@jest/globals';
import { parseRouterConfig, RouterConfigError } from '../src/config/load.js';

const minimal = 'execution_config: { file: { path: ./config.json } }\n';

function parse(yaml: string) {
  return parseRouterConfig(minimal + yaml, { env: { DEDUP: 'false' }, baseDir: '/srv/router' });
}

function messageOf(yaml: string): string {
  try {
    parse(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(RouterConfigError);
    return (err as RouterConfigError).message;
  }
  throw new Error('expected the configuration to be refused');
}

describe('router.yaml: traffic_shaping deduplicate_requests', () => {
  it('defaults: subgraph requests are shared, client requests are not', () => {
    const { trafficShaping } = parse('');
    expect(trafficShaping.all).toEqual({ deduplicateRequests: true });
    expect(trafficShaping.subgraphs).toEqual({});
    expect(trafficShaping.router.deduplicateRequests).toBe(false);
  });

  it('all, per subgraph and router, as written; a subgraph without the key follows all', () => {
    const { trafficShaping } = parse(`traffic_shaping:
  all: { deduplicate_requests: false, request_timeout: 5s }
  subgraphs:
    products: { deduplicate_requests: true }
    reviews: {}
  router: { deduplicate_requests: true }
`);
    expect(trafficShaping.all).toEqual({ deduplicateRequests: false, requestTimeoutMs: 5000 });
    expect(trafficShaping.subgraphs).toEqual({ products: { deduplicateRequests: true }, reviews: {} });
    expect(trafficShaping.router.deduplicateRequests).toBe(true);
  });

  it('takes ${NAME} for a switch', () => {
    expect(parse('traffic_shaping: { all: { deduplicate_requests: ${DEDUP} } }').trafficShaping.all).toEqual({
      deduplicateRequests: false,
    });
  });

  it('refuses a misspelt key with the closest one and the keys allowed there', () => {
    expect(messageOf('traffic_shaping: { all: { deduplicate_request: true } }')).toBe(
      'router.yaml: traffic_shaping.all.deduplicate_request: unknown key (did you mean "deduplicate_requests"?); allowed keys here: request_timeout, deduplicate_requests',
    );
    expect(messageOf('traffic_shaping: { subgraphs: { products: { dedupe: false } } }')).toBe(
      'router.yaml: traffic_shaping.subgraphs.products.dedupe: unknown key; allowed keys here: deduplicate_requests',
    );
    expect(messageOf('traffic_shaping: { subgraph: { products: { deduplicate_requests: false } } }')).toBe(
      'router.yaml: traffic_shaping.subgraph: unknown key (did you mean "subgraphs"?); allowed keys here: all, subgraphs, router',
    );
  });

  it('refuses a value that is not a boolean, naming the key', () => {
    expect(messageOf('traffic_shaping: { subgraphs: { products: { deduplicate_requests: "no" } } }')).toBe(
      'router.yaml: traffic_shaping.subgraphs.products.deduplicate_requests: must be a boolean (true or false)',
    );
    expect(messageOf('traffic_shaping: { router: { deduplicate_requests: 1 } }')).toBe(
      'router.yaml: traffic_shaping.router.deduplicate_requests: must be a boolean (true or false)',
    );
    expect(messageOf('traffic_shaping: { subgraphs: { products: true } }')).toBe(
      'router.yaml: traffic_shaping.subgraphs.products: must be a mapping',
    );
  });
});
