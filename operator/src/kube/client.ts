/**
 * The operator's one door to the Kubernetes API for requests (watches go through informers):
 * get, list, server-side apply, status patches, create, replace, delete, and raw requests.
 *
 * Thin on purpose: JSON over HTTPS with the credentials and TLS settings of a `KubeConfig`
 * (in-cluster token files are re-read by it, so rotated tokens are picked up). Every failure is
 * a `KubeApiError` carrying the HTTP status and the API server's own message, which names the
 * object and field; a 404 on `get` is `undefined`, not an error.
 *
 * Generic: it knows Kubernetes, not the operator. Who writes (the field manager, the user agent)
 * is a constructor parameter; the only operator module it imports is the resource table.
 */
import { Agent as HttpAgent, request as httpRequest, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { apiVersionOf, resourcePath, type AnyObject, type ResourceType } from './resources.js';

export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  accept?: string;
  timeoutMs?: number;
}

export interface RawResponse {
  status: number;
  body: string;
}

export interface ListResult<T> {
  items: T[];
  metadata: { resourceVersion?: string };
}

export interface ApplyOptions {
  fieldManager: string;
  force?: boolean;
}

export interface DeleteOptions {
  /** Delete only if the object still has this uid (it was not replaced meanwhile). */
  uid?: string;
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
}

export interface KubeClient {
  get<T extends AnyObject>(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
  ): Promise<T | undefined>;
  list<T extends AnyObject>(
    type: ResourceType,
    namespace?: string,
    opts?: { labelSelector?: string },
  ): Promise<ListResult<T>>;
  /** Server-side apply (`application/apply-patch+yaml`); returns the object as stored. */
  apply<T extends AnyObject>(type: ResourceType, obj: T, opts: ApplyOptions): Promise<T>;
  /** JSON merge patch of the status subresource. */
  patchStatus<T extends AnyObject>(
    type: ResourceType,
    namespace: string,
    name: string,
    patch: Record<string, unknown>,
  ): Promise<T>;
  create<T extends AnyObject>(type: ResourceType, obj: T): Promise<T>;
  /** PUT with the object's resourceVersion: fails with 409 when someone else wrote first. */
  replace<T extends AnyObject>(type: ResourceType, obj: T): Promise<T>;
  /** True when deleted, false when it was already gone. */
  delete(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    opts?: DeleteOptions,
  ): Promise<boolean>;
  request(spec: RequestSpec): Promise<RawResponse>;
}

/** A failed API call: `code` is the HTTP status, `reason` the Status reason (NotFound, Conflict...). */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    readonly code: number,
    message: string,
    readonly reason?: string,
    readonly body?: string,
  ) {
    super(message);
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.code === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof KubeApiError && err.code === 409;
}

const DEFAULT_TIMEOUT_MS = 30_000;

export interface HttpKubeClientOptions {
  /** Recorded in managedFields for every write that is not an apply (applies name their own). */
  fieldManager: string;
  /** Default: the field manager. */
  userAgent?: string;
}

export class HttpKubeClient implements KubeClient {
  private agent: HttpsAgent | HttpAgent | undefined;
  private readonly fieldManager: string;
  private readonly userAgent: string;

  constructor(
    private readonly kc: KubeConfig,
    opts: HttpKubeClientOptions,
  ) {
    this.fieldManager = opts.fieldManager;
    this.userAgent = opts.userAgent ?? opts.fieldManager;
  }

  async get<T extends AnyObject>(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
  ): Promise<T | undefined> {
    try {
      return await this.json<T>({ method: 'GET', path: resourcePath(type, { namespace, name }) });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  list<T extends AnyObject>(type: ResourceType, namespace?: string, opts: { labelSelector?: string } = {}) {
    return this.json<ListResult<T>>({
      method: 'GET',
      path: resourcePath(type, { namespace }),
      query: { labelSelector: opts.labelSelector },
    });
  }

  apply<T extends AnyObject>(type: ResourceType, obj: T, opts: ApplyOptions): Promise<T> {
    const body = { ...obj, apiVersion: apiVersionOf(type), kind: type.kind };
    return this.json<T>({
      method: 'PATCH',
      path: resourcePath(type, { namespace: obj.metadata.namespace, name: obj.metadata.name }),
      query: { fieldManager: opts.fieldManager, force: opts.force ? true : undefined },
      // JSON is YAML: the apply content type takes it as is.
      contentType: 'application/apply-patch+yaml',
      body,
    });
  }

  patchStatus<T extends AnyObject>(
    type: ResourceType,
    namespace: string,
    name: string,
    patch: Record<string, unknown>,
  ) {
    return this.json<T>({
      method: 'PATCH',
      path: resourcePath(type, { namespace, name, subresource: 'status' }),
      query: { fieldManager: this.fieldManager },
      contentType: 'application/merge-patch+json',
      body: patch,
    });
  }

  create<T extends AnyObject>(type: ResourceType, obj: T): Promise<T> {
    return this.json<T>({
      method: 'POST',
      path: resourcePath(type, { namespace: obj.metadata.namespace }),
      query: { fieldManager: this.fieldManager },
      body: { ...obj, apiVersion: apiVersionOf(type), kind: type.kind },
    });
  }

  replace<T extends AnyObject>(type: ResourceType, obj: T): Promise<T> {
    return this.json<T>({
      method: 'PUT',
      path: resourcePath(type, { namespace: obj.metadata.namespace, name: obj.metadata.name }),
      query: { fieldManager: this.fieldManager },
      body: { ...obj, apiVersion: apiVersionOf(type), kind: type.kind },
    });
  }

  async delete(type: ResourceType, namespace: string | undefined, name: string, opts: DeleteOptions = {}) {
    try {
      await this.json({
        method: 'DELETE',
        path: resourcePath(type, { namespace, name }),
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          ...(opts.uid ? { preconditions: { uid: opts.uid } } : {}),
          ...(opts.propagationPolicy ? { propagationPolicy: opts.propagationPolicy } : {}),
        },
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async request(spec: RequestSpec): Promise<RawResponse> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig: no current cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + spec.path);
    for (const [key, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const options: RequestOptions & Record<string, unknown> = { headers: {} };
    // Credentials (bearer token, client certificate, CA) as the kubeconfig says; the agent it
    // makes is replaced by one kept-alive agent per client unless a proxy is configured.
    await this.kc.applyToHTTPSOptions(options);
    if (!cluster.proxyUrl) options.agent = this.sharedAgent(url.protocol, options);
    const headers = options.headers as Record<string, string>;
    headers.accept = spec.accept ?? 'application/json';
    headers['user-agent'] = this.userAgent;
    let payload: string | undefined;
    if (spec.body !== undefined) {
      payload = JSON.stringify(spec.body);
      headers['content-type'] = spec.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const timeoutMs = spec.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise<RawResponse>((resolve, reject) => {
      const req = send(url, { ...options, method: spec.method, headers, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      });
      req.on('timeout', () =>
        req.destroy(new Error(`${spec.method} ${spec.path}: no answer after ${timeoutMs} ms`)),
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  private async json<T>(spec: RequestSpec): Promise<T> {
    const res = await this.request(spec);
    if (res.status >= 200 && res.status < 300) return (res.body ? JSON.parse(res.body) : {}) as T;
    let message = `${spec.method} ${spec.path}: HTTP ${res.status}`;
    let reason: string | undefined;
    try {
      const status = JSON.parse(res.body) as { message?: string; reason?: string };
      if (status.message) message = `${message}: ${status.message}`;
      reason = status.reason;
    } catch {
      if (res.body) message = `${message}: ${res.body.slice(0, 500)}`;
    }
    throw new KubeApiError(res.status, message, reason, res.body);
  }

  private sharedAgent(protocol: string, options: Record<string, unknown>): HttpsAgent | HttpAgent {
    if (!this.agent) {
      this.agent =
        protocol === 'http:'
          ? new HttpAgent({ keepAlive: true })
          : new HttpsAgent({
              keepAlive: true,
              ca: options.ca as Buffer | undefined,
              cert: options.cert as Buffer | undefined,
              key: options.key as Buffer | undefined,
              pfx: options.pfx as Buffer | undefined,
              passphrase: options.passphrase as string | undefined,
              servername: options.servername as string | undefined,
              rejectUnauthorized: options.rejectUnauthorized !== false,
            });
    }
    return this.agent;
  }

  /** Closes idle keep-alive connections (on shutdown). */
  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }
}

/** Refused write: this replica does not hold the leader Lease (any more). */
export class NotLeaderError extends Error {
  override name = 'NotLeaderError';
}

/**
 * The client with every write gated by `allowed()`: a replica that lost its Lease mid-reconcile
 * cannot write another byte, even before its workers have noticed. Reads and raw GETs pass.
 */
export function fenceWrites(client: KubeClient, allowed: () => boolean): KubeClient {
  const check = (what: string) => {
    if (!allowed()) throw new NotLeaderError(`${what} refused: this operator replica is not the leader`);
  };
  return {
    get: (type, namespace, name) => client.get(type, namespace, name),
    list: (type, namespace, opts) => client.list(type, namespace, opts),
    async apply(type, obj, opts) {
      check(`apply ${type.kind} ${obj.metadata.name}`);
      return client.apply(type, obj, opts);
    },
    async patchStatus(type, namespace, name, patch) {
      check(`status patch of ${type.kind} ${name}`);
      return client.patchStatus(type, namespace, name, patch);
    },
    async create(type, obj) {
      check(`create ${type.kind} ${obj.metadata.name}`);
      return client.create(type, obj);
    },
    async replace(type, obj) {
      check(`update ${type.kind} ${obj.metadata.name}`);
      return client.replace(type, obj);
    },
    async delete(type, namespace, name, opts) {
      check(`delete ${type.kind} ${name}`);
      return client.delete(type, namespace, name, opts);
    },
    async request(spec) {
      if (spec.method !== 'GET') check(`${spec.method} ${spec.path}`);
      return client.request(spec);
    },
  };
}
