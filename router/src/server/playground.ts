/**
 * GraphiQL, served entirely by the router: machines running it often have no internet, so nothing
 * comes from a CDN. The assets are Yoga's self-contained GraphiQL build (React, the editor and its
 * web workers in one package), loaded on the first page view and then kept in memory. The page
 * speaks graphql-transport-ws for subscriptions.
 */
import type { FastifyPluginAsync } from 'fastify';

/** Where the assets are served; the page refers to them by absolute path. */
export const PLAYGROUND_ASSETS_PREFIX = '/graphiql/assets';

export interface PlaygroundOptions {
  /** The GraphQL endpoint the page talks to. */
  graphqlPath: string;
  title?: string;
}

interface Asset {
  type: string;
  body: string | Buffer;
}

type Assets = Record<string, Asset>;

let assets: Promise<Assets> | undefined;

function loadAssets(): Promise<Assets> {
  assets ??= import('@graphql-yoga/render-graphiql/graphiql').then((m) => {
    const js = 'application/javascript; charset=utf-8';
    const favicon = /^data:([^;,]+);base64,(.*)$/s.exec(m.favicon);
    return {
      'graphiql.js': { type: js, body: m.js },
      'graphiql.css': { type: 'text/css; charset=utf-8', body: m.css },
      'editor.worker.js': { type: js, body: m.editorWorkerService },
      'json.worker.js': { type: js, body: m.jsonWorker },
      'graphql.worker.js': { type: js, body: m.graphqlWorker },
      'favicon.ico': favicon
        ? { type: favicon[1]!, body: Buffer.from(favicon[2]!, 'base64') }
        : { type: 'image/x-icon', body: Buffer.alloc(0) },
    };
  });
  assets.catch(() => {
    assets = undefined; // let a later page view try again
  });
  return assets;
}

/** Serves the assets; the page itself is rendered by `renderPlayground` for `GET graphql_path`. */
export const playgroundAssetsPlugin: FastifyPluginAsync = async (app) => {
  app.get<{ Params: { file: string } }>(`${PLAYGROUND_ASSETS_PREFIX}/:file`, async (request, reply) => {
    const asset = (await loadAssets())[request.params.file];
    if (!asset)
      return reply.code(404).type('text/plain').send(`no such GraphiQL asset: ${request.params.file}\n`);
    return reply.type(asset.type).header('cache-control', 'public, max-age=86400').send(asset.body);
  });
};

export function renderPlayground(options: PlaygroundOptions): string {
  const asset = (file: string) => `${PLAYGROUND_ASSETS_PREFIX}/${file}`;
  const settings = {
    endpoint: options.graphqlPath,
    title: options.title ?? 'EDFS router',
    subscriptionsProtocol: 'WS',
  };
  const workers = {
    editorWorkerService: asset('editor.worker.js'),
    json: asset('json.worker.js'),
    graphql: asset('graphql.worker.js'),
  };
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escapeHtml(settings.title)}</title>
    <link rel="icon" href="${asset('favicon.ico')}" />
    <link rel="stylesheet" href="${asset('graphiql.css')}" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>GraphiQL needs JavaScript.</noscript>
    <div id="root"></div>
    <script>
      const workers = ${scriptJson(workers)};
      self.MonacoEnvironment = {
        globalAPI: false,
        getWorkerUrl: (_moduleId, label) => new URL(workers[label], location.href).href,
      };
    </script>
    <script src="${asset('graphiql.js')}"></script>
    <script>
      YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), ${scriptJson(settings)});
    </script>
  </body>
</html>
`;
}

/** JSON that cannot close the surrounding <script>. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
