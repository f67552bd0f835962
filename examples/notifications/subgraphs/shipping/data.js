/**
 * The shipping subgraph's state: where each order goes, and the parcel once it has left the
 * warehouse. The parcel depends on the order's status, which this subgraph does not own: the router
 * passes it along (`@requires(fields: "status")`).
 */
const ADDRESSES = {
  1001: { recipient: 'Ada Lovelace', street: '12 St James Square', city: 'London', country: 'GB' },
  1002: { recipient: 'Grace Hopper', street: '1 Navy Yard', city: 'Arlington', country: 'US' },
  1003: { recipient: 'Katherine Johnson', street: '3 Langley Rd', city: 'Hampton', country: 'US' },
};

const CARRIERS = { 1001: 'DHL', 1002: 'UPS', 1003: 'Royal Mail' };

export function createShippingStore() {
  return {
    address: (id) => ADDRESSES[id] ?? null,
    /** The parcel of order `id` in `status`, or null while it is still in the warehouse. */
    shipment(id, status) {
      if (status !== 'SHIPPED' && status !== 'DELIVERED') return null;
      return {
        carrier: CARRIERS[id] ?? 'DHL',
        trackingNumber: `TRK${String(id).padStart(8, '0')}`,
        state: status === 'DELIVERED' ? 'DELIVERED' : 'IN_TRANSIT',
      };
    },
  };
}
