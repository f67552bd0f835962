/**
 * `/health/live`: the process serves HTTP. `/health/ready`: every readiness check passes
 * (execution config loaded, providers connected); otherwise 503 with the reasons.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Readiness } from './readiness.js';

export const healthPlugin: FastifyPluginAsync<{ readiness: Readiness }> = async (app, { readiness }) => {
  app.get('/health/live', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'ok' };
  });
  app.get('/health/ready', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    const report = await readiness.evaluate();
    if (report.ready) return { status: 'ok' };
    return reply.code(503).send({ status: 'unavailable', reasons: report.reasons });
  });
};
