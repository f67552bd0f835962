/**
 * The orders subgraph's state: three orders in memory (restarting resets them). Statuses move
 * freely between the values of `OrderStatus`; a shop would enforce its own transitions.
 */
const SEED = [
  {
    id: '1001',
    status: 'PAID',
    items: [
      { sku: 'BEANS-1KG', name: 'Espresso beans, 1 kg', quantity: 2, unitPrice: 18.5 },
      { sku: 'FROTHER', name: 'Milk frother', quantity: 1, unitPrice: 39.9 },
    ],
    updatedAt: '2024-05-02T09:15:00.000Z',
  },
  {
    id: '1002',
    status: 'PLACED',
    items: [{ sku: 'GRINDER', name: 'Burr grinder', quantity: 1, unitPrice: 129 }],
    updatedAt: '2024-05-02T10:02:00.000Z',
  },
  {
    id: '1003',
    status: 'SHIPPED',
    items: [{ sku: 'CUPS-6', name: 'Espresso cups, set of 6', quantity: 1, unitPrice: 24 }],
    updatedAt: '2024-05-01T16:40:00.000Z',
  },
];

export const STATUSES = ['PLACED', 'PAID', 'PACKED', 'SHIPPED', 'DELIVERED', 'CANCELLED'];

export function createOrderStore() {
  const byId = new Map(SEED.map((o) => [o.id, { ...o, items: o.items.map((i) => ({ ...i })) }]));
  const withTotal = (order) =>
    order && {
      ...order,
      total: Math.round(order.items.reduce((sum, i) => sum + i.quantity * i.unitPrice, 0) * 100) / 100,
    };
  return {
    get: (id) => withTotal(byId.get(String(id))) ?? null,
    all: () => [...byId.values()].map(withTotal),
    /** Sets the status; returns the updated order, or null for an unknown id. */
    setStatus(id, status) {
      const order = byId.get(String(id));
      if (!order) return null;
      order.status = status;
      order.updatedAt = new Date().toISOString();
      return withTotal(order);
    },
  };
}
