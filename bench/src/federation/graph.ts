/**
 * Apollo's classic four-subgraph graph (accounts, products, inventory, reviews), grown by an
 * `offset` argument on the two list roots so a load generator can make every request different.
 * Data is synthesized from the ids (`p17`, `u3`, `r17-1`), so any offset has data and the same
 * request always gets the same answer; every subgraph computes its fields from the id alone.
 *
 * `inventory.shippingEstimate` `@requires` the price and weight from products, and reviews
 * `@provides` the author's username: the query planner's two classic tricks are both on the path.
 */
const LINK = (imports: string[]) =>
  `extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: [${imports.map((i) => `"${i}"`).join(', ')}])\n`;

export const SDL: Record<SubgraphName, string> = {
  accounts: `${LINK(['@key', '@shareable'])}
type Query { me: User users(first: Int = 5, offset: Int = 0): [User] }
type User @key(fields: "id") { id: ID! name: String username: String @shareable }`,
  products: `${LINK(['@key'])}
type Query { topProducts(first: Int = 5, offset: Int = 0): [Product] }
type Product @key(fields: "upc") { upc: String! name: String price: Int weight: Int }`,
  inventory: `${LINK(['@key', '@external', '@requires'])}
type Product @key(fields: "upc") {
  upc: String!
  weight: Int @external
  price: Int @external
  inStock: Boolean
  shippingEstimate: Int @requires(fields: "price weight")
}`,
  reviews: `${LINK(['@key', '@external', '@provides'])}
type Review @key(fields: "id") { id: ID! body: String author: User @provides(fields: "username") product: Product }
type User @key(fields: "id") { id: ID! username: String @external reviews: [Review] }
type Product @key(fields: "upc") { upc: String! reviews: [Review] }`,
};

export type SubgraphName = 'accounts' | 'products' | 'inventory' | 'reviews';
export const SUBGRAPHS: SubgraphName[] = ['accounts', 'products', 'inventory', 'reviews'];

/** The number in an id: `p17` -> 17. */
const num = (id: string) => Number(id.replace(/^\D+/, '').split('-')[0]);

const user = (id: string) => ({ id, name: `User ${num(id)}`, username: `user${num(id)}` });
const product = (upc: string) => {
  const n = num(upc);
  return { upc, name: `Product ${n}`, price: 100 + (n % 900), weight: 1 + (n % 50) };
};
/** Two reviews per product and per user; authors and products spread over the id space. */
const reviewsOfProduct = (upc: string) =>
  [1, 2].map((k) => ({
    id: `r${num(upc)}-${k}`,
    body: `Review ${k} of product ${num(upc)}`,
    author: { id: `u${(num(upc) * 3 + k) % 1_000_003}`, username: `user${(num(upc) * 3 + k) % 1_000_003}` },
    product: { upc },
  }));
const reviewsOfUser = (id: string) =>
  [1, 2].map((k) => ({
    id: `r${num(id)}-u${k}`,
    body: `Review ${k} by user ${num(id)}`,
    author: { id, username: `user${num(id)}` },
    product: { upc: `p${num(id) + k}` },
  }));

type Args = { first: number; offset: number };
const range = ({ first, offset }: Args) => Array.from({ length: first }, (_, i) => offset + i);

/** Resolvers per subgraph (for `buildSubgraphSchema`). */
export const RESOLVERS: Record<SubgraphName, Record<string, Record<string, unknown>>> = {
  accounts: {
    Query: {
      me: () => user('u1'),
      users: (_: unknown, args: Args) => range(args).map((n) => user(`u${n}`)),
    },
    User: { __resolveReference: (ref: { id: string }) => user(ref.id) },
  },
  products: {
    Query: { topProducts: (_: unknown, args: Args) => range(args).map((n) => product(`p${n}`)) },
    Product: { __resolveReference: (ref: { upc: string }) => product(ref.upc) },
  },
  inventory: {
    Product: {
      __resolveReference: (ref: { upc: string; price?: number; weight?: number }) => ref,
      inStock: (p: { upc: string }) => num(p.upc) % 3 !== 0,
      shippingEstimate: (p: { price: number; weight: number }) =>
        p.price > 800 ? 0 : Math.round(p.weight * 0.5),
    },
  },
  reviews: {
    Review: { __resolveReference: (ref: { id: string }) => ({ id: ref.id, body: `Review ${ref.id}` }) },
    User: {
      __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
      reviews: (u: { id: string }) => reviewsOfUser(u.id),
    },
    Product: {
      __resolveReference: (ref: { upc: string }) => ({ upc: ref.upc }),
      reviews: (p: { upc: string }) => reviewsOfProduct(p.upc),
    },
  },
};

/**
 * The deep query of the usual gateway benchmarks: both list roots, then reviews, products,
 * inventory (with `@requires`), authors and their reviews, four levels of entity joins, about
 * ten subgraph requests per execution. `$offset` picks the data; without it, offset 0.
 */
export const DEEP_QUERY = `fragment U on User { id username name }
fragment R on Review { id body }
fragment P on Product { inStock name price shippingEstimate upc weight }
query Deep($offset: Int = 0) {
  users(offset: $offset) { ...U reviews { ...R product { ...P reviews { ...R author { ...U reviews { ...R product { ...P } } } } } } }
  topProducts(offset: $offset) { ...P reviews { ...R author { ...U reviews { ...R product { ...P } } } } }
}`;

/** The floor: the same kind of root list, sent straight to the products subgraph. */
export const DIRECT_QUERY = `query Direct($offset: Int = 0) { topProducts(offset: $offset) { upc name price weight } }`;
