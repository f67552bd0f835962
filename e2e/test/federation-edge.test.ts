/**
 * Federation edge cases: the router in-process over the small graphs of
 * `src/fixtures/federation/edge` (one planning situation each; see the comments in graphs.ts for
 * the data every expectation is derived from). Like the shop's suites, every expectation is the
 * response a correct federation gateway returns.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createGateway } from '@edfs/router';
import {
  ARCHIVE,
  CAMPUS,
  DEPOT,
  GALLERY,
  KENNEL,
  NOTICEBOARD,
  SHELVES,
  SHOPWINDOW,
  STUDIO,
  TICKETS,
  WEATHER,
  WORKSHOP,
  startEdgeGraph,
  type EdgeGraph,
  type EdgeSubgraph,
} from '../src/fixtures/federation/edge/index.js';

interface Response {
  data?: unknown;
  errors?: readonly unknown[];
}

/** Starts `subgraphs` for the enclosing describe block and returns a query runner over them. */
function useGraph(subgraphs: readonly EdgeSubgraph[]) {
  let graph: EdgeGraph;
  let gateway: ReturnType<typeof createGateway>;
  beforeAll(async () => {
    graph = await startEdgeGraph(subgraphs);
    gateway = createGateway(graph.config, { subgraphTimeoutMs: 5_000 });
  });
  afterAll(async () => {
    await gateway?.close();
    await graph?.close();
  });
  return {
    run: async (query: string, variables?: Record<string, unknown>): Promise<Response> =>
      gateway.execute({ query, variables }),
    requests: (subgraph: string) => graph.requests.get(subgraph) ?? [],
    clearRequests: () => graph.clearRequests(),
  };
}

/** The whole response must equal `expected`; `data` must also list its keys in the same order. */
function expectResponse(actual: Response, expected: Response): void {
  expect(actual).toEqual(expected);
  if (expected.data !== undefined) expect(JSON.stringify(actual.data)).toBe(JSON.stringify(expected.data));
}

describe('@requires on an @interfaceObject field', () => {
  const graph = useGraph(STUDIO);

  it('sends the required field, fetched from the interface owner, when the list starts in the @interfaceObject subgraph', async () => {
    expectResponse(await graph.run('{ trending { id title slug } }'), {
      data: {
        trending: [
          { id: 't2', title: 'Coffee Break', slug: 'coffee-break' },
          { id: 't1', title: 'Blue Morning', slug: 'blue-morning' },
        ],
      },
    });
  });

  it('finds the requirement through the interface when the objects come from the owner as concrete types', async () => {
    expectResponse(await graph.run('{ tracks { id slug } }'), {
      data: {
        tracks: [
          { id: 't1', slug: 'blue-morning' },
          { id: 't2', slug: 'coffee-break' },
          { id: 't3', slug: 'night-drive' },
        ],
      },
    });
  });
});

describe('one response key with different types in sibling fragments', () => {
  const graph = useGraph(WORKSHOP);
  const staff = { id: 's1', name: 'Mia' };
  const guest = { id: 'g1', name: 'Ola' };

  it('resolves ID! and ID under the same key from one subgraph', async () => {
    const query = '{ onDuty { id name } people { ... on Staff { id name } ... on Guest { id name } } }';
    expectResponse(await graph.run(query), { data: { onDuty: [staff], people: [staff, guest] } });
  });

  it('keeps the fields apart at every nesting level', async () => {
    const both = '... on Staff { id name } ... on Guest { id name }';
    const query = `{ people { ... on Staff { id buddies { ${both} } } ... on Guest { id buddies { ${both} } } } }`;
    expectResponse(await graph.run(query), {
      data: {
        people: [
          { id: 's1', buddies: [guest, staff] },
          { id: 'g1', buddies: [guest, staff] },
        ],
      },
    });
  });
});

describe('a shareable field that one subgraph declares with an object type and another with a union', () => {
  const graph = useGraph(SHOPWINDOW);

  it('asks the object-typed subgraph only for what its type has', async () => {
    const query =
      '{ window { label pick { __typename ... on Novel { title } ... on Poster { title widthCm } } } }';
    expectResponse(await graph.run(query), {
      data: { window: { label: 'Autumn', pick: { __typename: 'Novel', title: 'Quiet Rivers' } } },
    });
  });
});

describe('one entity fetch fed from the selections of several implementations', () => {
  const graph = useGraph(ARCHIVE);

  it('sends the key from every branch that reaches it', async () => {
    expectResponse(await graph.run('{ pieces { id notes { text piece { code } } } }'), {
      data: {
        pieces: [
          { id: 'p1', notes: [{ text: 'faded corner', piece: { code: 'PR-1' } }] },
          { id: 's1', notes: [{ text: 'torn edge', piece: { code: 'SC-1' } }] },
        ],
      },
    });
  });
});

describe('an @interfaceObject selection that does not depend on the concrete type', () => {
  const graph = useGraph(NOTICEBOARD);

  it('is answered by the @interfaceObject subgraph alone', async () => {
    graph.clearRequests();
    expectResponse(await graph.run('{ pinned { id headline } }'), {
      data: { pinned: { id: 'n1', headline: 'Lift out of order' } },
    });
    expect(graph.requests('kinds')).toHaveLength(0);
  });

  it('still asks the owner when the client wants the concrete type', async () => {
    expectResponse(await graph.run('{ pinned { __typename headline ... on Alert { level } } }'), {
      data: { pinned: { __typename: 'Alert', headline: 'Lift out of order', level: 2 } },
    });
  });
});

describe('@requires with an inline fragment on the interface type of the required field', () => {
  const graph = useGraph(GALLERY);

  it('sends the fields under the fragment in the representation', async () => {
    expectResponse(await graph.run('{ artworks { title price } }'), {
      data: {
        artworks: [
          { title: 'Harbour at Dusk', price: 130 },
          { title: 'Reeds', price: 80 },
        ],
      },
    });
  });
});

describe('a shareable root field whose value-type fields are spread over subgraphs', () => {
  const graph = useGraph(WEATHER);

  it('asks every subgraph for its fields and merges the answers', async () => {
    expectResponse(await graph.run('{ today { day high sky windKph } week { day sky high } }'), {
      data: {
        today: { day: 'Mon', high: 14, sky: 'cloudy', windKph: 20 },
        week: [
          { day: 'Mon', sky: 'cloudy', high: 14 },
          { day: 'Tue', sky: 'sunny', high: 17 },
        ],
      },
    });
  });

  it('still uses one subgraph when one resolves everything', async () => {
    graph.clearRequests();
    expectResponse(await graph.run('{ today { day sky } }'), {
      data: { today: { day: 'Mon', sky: 'cloudy' } },
    });
    const sent = ['temperatures', 'skies', 'winds'].map((name) => graph.requests(name).length);
    expect(sent).toEqual([0, 1, 0]);
  });
});

describe('@requires with an argument in the field set', () => {
  const graph = useGraph(TICKETS);

  it('sends the required field fetched with its argument', async () => {
    expectResponse(await graph.run('{ rides { id total } }'), {
      data: {
        rides: [
          { id: 'r1', total: 15 },
          { id: 'r2', total: 33 },
        ],
      },
    });
  });

  it('keeps the required value apart from the same field the client selects with another argument', async () => {
    expectResponse(await graph.run('{ rides { fare(currency: "USD") total eur: fare(currency: "EUR") } }'), {
      data: {
        rides: [
          { fare: 13, total: 15, eur: 12 },
          { fare: 33, total: 33, eur: 30 },
        ],
      },
    });
  });

  it('passes a variable default on to the subgraph, where it fills a non-null argument', async () => {
    expectResponse(await graph.run('query ($c: String = "USD") { rides { fare(currency: $c) } }'), {
      data: { rides: [{ fare: 13 }, { fare: 33 }] },
    });
  });
});

describe('a value type that another subgraph extends, reached through a parent entity', () => {
  const graph = useGraph(SHELVES);

  it('keeps the fields the first subgraph has and fetches the others through the parent entity', async () => {
    expectResponse(await graph.run('{ books { id genre { name stats { titles } } } }'), {
      data: {
        books: [
          { id: 'b1', genre: { name: 'Science fiction', stats: { titles: 2 } } },
          { id: 'b2', genre: { name: 'Romance', stats: { titles: 1 } } },
          { id: 'b3', genre: { name: 'Science fiction', stats: { titles: 2 } } },
        ],
      },
    });
  });
});

describe('a field whose value no single subgraph completes, on an entity the root subgraph only keys', () => {
  const graph = useGraph(CAMPUS);

  it('fetches each part through the entity from the subgraph that has it, and follows the key of the value', async () => {
    expectResponse(await graph.run('{ courses { title room { code building seats } } }'), {
      data: {
        courses: [
          { title: 'Algebra', room: { code: 'r1', building: 'North', seats: 40 } },
          { title: 'Botany', room: { code: 'r2', building: 'South', seats: 25 } },
        ],
      },
    });
  });
});

describe('an enum value that is @inaccessible', () => {
  const graph = useGraph(DEPOT);

  it('is not passed on: the field is null, with an error at its path', async () => {
    const response = await graph.run('{ parcels { id status } }');
    expect(response.data).toEqual({
      parcels: [
        { id: 'p1', status: 'SENT' },
        { id: 'p2', status: null },
        { id: 'p3', status: 'DELIVERED' },
      ],
    });
    expect(response.errors).toEqual([expect.objectContaining({ path: ['parcels', 1, 'status'] })]);
  });
});

describe('a field of an @interfaceObject that another @interfaceObject subgraph resolves', () => {
  const graph = useGraph(KENNEL);

  it('is fetched from that subgraph with the interface representation, without the owner', async () => {
    graph.clearRequests();
    expectResponse(await graph.run('{ pets { name vaccinated } }'), {
      data: {
        pets: [
          { name: 'Rex', vaccinated: true },
          { name: 'Tom', vaccinated: false },
        ],
      },
    });
    expect(graph.requests('registry')).toHaveLength(0);
    expect(graph.requests('health')).toHaveLength(1);
  });
});
