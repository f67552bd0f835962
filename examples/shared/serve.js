/**
 * The HTTP edge shared by the example subgraphs (chat, employees): GraphQL over HTTP (POST JSON,
 * or GET ?query=) on /graphql, plus GET /health for probes. Plain node:http and graphql-js; no
 * framework, so an example stays a few files a reader can take in at once.
 */
import { realpathSync } from 'node:fs';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { parse, validate, execute, specifiedRules, GraphQLError } from 'graphql';

const MAX_BODY_BYTES = 1 << 20;

/**
 * Serves `schema` until `close()` is called.
 * @param {import('graphql').GraphQLSchema} schema
 * @param {{ port?: number, host?: string, name?: string }} [options]
 * @returns {Promise<{ url: string, port: number, close(): Promise<void> }>}
 */
export async function serveSubgraph(schema, { port = 0, host, name = 'subgraph' } = {}) {
  const server = createServer((req, res) => {
    handle(schema, req, res).catch((err) => {
      console.error(`${name}: request failed`, err);
      if (!res.headersSent) send(res, 500, { errors: [{ message: 'internal server error' }] });
      else res.destroy();
    });
  });
  // A router keeps connections alive; do not let them hold the process open on close().
  server.keepAliveTimeout = 5_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(undefined);
    });
  });
  const address = server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const urlHost = !host || host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  return {
    url: `http://${urlHost}:${boundPort}/graphql`,
    port: boundPort,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve(undefined));
        server.closeAllConnections();
      }),
  };
}

async function handle(schema, req, res) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/health') return send(res, 200, { status: 'ok' });
  if (url.pathname !== '/graphql')
    return send(res, 404, { errors: [{ message: `no route ${url.pathname}` }] });

  let params;
  if (req.method === 'GET') {
    const variables = url.searchParams.get('variables');
    params = {
      query: url.searchParams.get('query'),
      operationName: url.searchParams.get('operationName'),
      variables: variables ? JSON.parse(variables) : undefined,
    };
  } else if (req.method === 'POST') {
    try {
      params = JSON.parse(await readBody(req));
    } catch (err) {
      return send(res, 400, { errors: [{ message: `request body is not JSON: ${err.message}` }] });
    }
  } else {
    res.setHeader('allow', 'GET, POST');
    return send(res, 405, { errors: [{ message: `method ${req.method} not allowed` }] });
  }
  if (!params || typeof params.query !== 'string') {
    return send(res, 400, { errors: [{ message: 'Must provide query string.' }] });
  }

  let document;
  try {
    document = parse(params.query);
  } catch (err) {
    // application/json responses: a well-formed request gets 200 even when the document is bad.
    return send(res, 200, { errors: [toError(err)] });
  }
  const validationErrors = validate(schema, document, specifiedRules);
  if (validationErrors.length > 0) {
    return send(res, 200, { errors: validationErrors.map(toError) });
  }
  const result = await execute({
    schema,
    document,
    variableValues: params.variables ?? undefined,
    operationName: params.operationName ?? undefined,
  });
  return send(res, 200, {
    ...(result.errors ? { errors: result.errors.map(toError) } : {}),
    ...('data' in result ? { data: result.data } : {}),
  });
}

function toError(err) {
  return err instanceof GraphQLError ? err.toJSON() : { message: String(err?.message ?? err) };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

/** True when `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl) {
  if (!process.argv[1]) return false;
  try {
    return pathToFileURL(realpathSync(process.argv[1])).href === moduleUrl;
  } catch {
    return false;
  }
}
