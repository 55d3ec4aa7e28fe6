/**
 * Which sink: its name and the tenant whose admin created it. Sink names are
 * scoped per tenant, so a tenant-bound admin can neither collide with nor
 * learn of another tenant's sink names: `siem` of tenant `acme` and `siem` of
 * tenant `globex` are two sinks. `tenantId: null` is the operator's scope
 * (the config file and all-tenant admins).
 */
export interface SinkRef {
  name: string;
  tenantId: string | null;
}

/**
 * The sink's key in the store (its settings, cursor, dead letters and lease):
 * the name in the operator's scope, `<tenant>/<name>` in a tenant's. Neither
 * a sink name nor a tenant id can hold a `/`, so keys never collide.
 */
export function sinkKey(ref: SinkRef): string {
  return ref.tenantId === null ? ref.name : `${ref.tenantId}/${ref.name}`;
}

/** How a sink is named in messages: `siem`, or `siem (tenant acme)`. */
export function describeSink(ref: SinkRef): string {
  return ref.tenantId === null ? ref.name : `${ref.name} (tenant ${ref.tenantId})`;
}
