/** Entry point of `edfs operator`. Placeholder until the reconcilers land. */

export interface OperatorOptions {
  /** Kubeconfig file; without it the in-cluster service account config is used. */
  kubeconfig?: string;
  /** Watch only this namespace; all namespaces when omitted. */
  namespace?: string;
  /** Take a Lease before reconciling so only one replica acts. */
  leaderElect?: boolean;
}

export async function runOperator(_opts: OperatorOptions): Promise<void> {
  throw new Error('operator: not available yet');
}
