// The TypeScript client is tested against the control plane's OpenAPI
// description (internal/server/openapi.json, itself tested against routes.go
// by internal/server/openapi_test.go): every call it makes is a described
// operation, every described /api/ operation has a client method, each
// method's answer type is the operation's schema, and the wire interfaces of
// src/types.ts have the schemas' property names, required-ness and nullability.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const OPENAPI_PATH = here('../../../internal/server/openapi.json');

type Schema = {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
};
type Parameter = { name: string; in: string };
type Operation = { parameters?: Parameter[]; responses?: Record<string, { content?: Record<string, { schema?: Schema }> }> };
type Doc = { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> } };

const doc = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')) as Doc;
const clientSrc = readFileSync(here('../src/client.ts'), 'utf8');
const typesSrc = readFileSync(here('../src/types.ts'), 'utf8');

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/** Described operations, keyed "METHOD /path/{param}", with their path as described. */
function describedOps(): Map<string, Operation & { described: string }> {
  const out = new Map<string, Operation & { described: string }>();
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      if (!METHODS.includes(m)) continue;
      const parameters = [...((ops as { parameters?: Parameter[] }).parameters ?? []), ...(op.parameters ?? [])];
      out.set(`${m.toUpperCase()} ${path.replace(/\{[^}]+\}/g, '{param}')}`, { ...op, parameters, described: `${m.toUpperCase()} ${path}` });
    }
  }
  return out;
}

/** Operations under /api/ the client deliberately has no method for. Keep each commented. */
const NOT_WRAPPED = new Set<string>([
  // "METHOD /api/path/{param}" (path parameters written {param}).
  // (none: every /api/ operation has a method)
]);

type ClientCall = { method: string; op: string; returns: string; name: string; text: boolean; params: string; queryArg?: string };

/** clientCalls finds each `name(…): Promise<R> { return this.request[Text]('M', path …` of src/client.ts. */
function clientCalls(): ClientCall[] {
  const re =
    /(\w+)\(([^)]*)\)\s*:\s*Promise<([^{]+?)>\s*\{\s*return this\.request(Text)?(?:<[^>]*>)?\(\s*'([A-Z]+)',\s*(?:'([^']*)'|`([^`]*)`)/g;
  const out: ClientCall[] = [];
  for (const m of clientSrc.matchAll(re)) {
    const raw = m[6] ?? m[7];
    const path = raw
      .replace(/\$\{query\([^}]*\}\)\}/g, '') // ${query({ … })}
      .replace(/\$\{query\([^)]*\)\}/g, '') // ${query(q)}
      .replace(/\$\{[^}]+\}/g, '{param}'); // ${seg(userId)}
    const queryArg = /\$\{query\(([\s\S]*?)\)\}/.exec(raw)?.[1];
    out.push({ name: m[1], params: m[2], returns: m[3].trim(), text: m[4] === 'Text', method: m[5], op: `${m[5]} ${path}`, queryArg });
  }
  return out;
}

type Field = { name: string; optional: boolean; type: string };
type Iface = { name: string; extends: string[]; fields: Field[] };

/** parseInterfaces reads the top-level fields of each `export interface X [extends Y, Z] { … }`. */
function parseInterfaces(src: string): Map<string, Iface> {
  const out = new Map<string, Iface>();
  const head = /export interface (\w+)(?:\s+extends\s+([\w\s,]+?))?\s*\{/g;
  for (const m of src.matchAll(head)) {
    let i = m.index! + m[0].length;
    let depth = 1;
    const start = i;
    while (depth > 0 && i < src.length) {
      if (src[i] === '{') depth++;
      else if (src[i] === '}') depth--;
      i++;
    }
    const body = src
      .slice(start, i - 1)
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    // Split at top-level ; or newlines.
    const members: string[] = [];
    let cur = '';
    let d = 0;
    for (const ch of body) {
      if ('{(<['.includes(ch)) d++;
      if ('})>]'.includes(ch)) d--;
      if (d === 0 && (ch === ';' || ch === '\n')) {
        if (cur.trim()) members.push(cur.trim());
        cur = '';
      } else cur += ch;
    }
    if (cur.trim()) members.push(cur.trim());
    const fields: Field[] = [];
    for (const mem of members) {
      const f = /^(?:readonly\s+)?(\w+)(\?)?\s*:\s*([\s\S]+)$/.exec(mem);
      if (f) fields.push({ name: f[1], optional: f[2] === '?', type: f[3].trim() });
    }
    out.set(m[1], { name: m[1], extends: m[2] ? m[2].split(',').map((s) => s.trim()) : [], fields });
  }
  return out;
}

const ifaces = parseInterfaces(typesSrc);

/** fieldsOf resolves `extends`: a child's field overrides its parent's. */
function fieldsOf(name: string): Map<string, Field> {
  const i = ifaces.get(name);
  if (!i) throw new Error(`src/types.ts has no "export interface ${name}"`);
  const out = new Map<string, Field>();
  for (const p of i.extends) for (const [k, v] of fieldsOf(p)) out.set(k, v);
  for (const f of i.fields) out.set(f.name, f);
  return out;
}

/** The wire interfaces of src/types.ts and the OpenAPI schema each one is. */
const TS_TO_SCHEMA: Record<string, string> = {
  ErrorBody: 'Error',
  SuccessResponse: 'Success',
  Health: 'Health',
  User: 'User',
  Limits: 'Limits',
  Usage: 'Usage',
  Container: 'Container',
  ContainerList: 'ContainerList',
  OnboardRequest: 'OnboardRequest',
  OnboardResponse: 'OnboardResponse',
  CreateContainerRequest: 'CreateContainerRequest',
  CreateContainerResponse: 'CreateContainerResponse',
  ContainerActionResponse: 'ContainerActionResponse',
  LogsResponse: 'LogsResponse',
  LifecycleEvent: 'LifecycleEvent',
  ContainerEventList: 'ContainerEventList',
  AutomationStatus: 'AutomationStatus',
  StartResponse: 'StartResponse',
  StopResponse: 'StopResponse',
  BerthEvent: 'Event',
  ActionsPage: 'ActionsPage',
  Workflow: 'Workflow',
  WorkflowList: 'WorkflowList',
  SignupRequest: 'Credentials',
  SessionResponse: 'SessionResponse',
  AuthConfig: 'AuthConfig',
  Me: 'Me',
  MyContainerResponse: 'MyContainerResponse',
  TokenInfo: 'TokenInfo',
  TokenList: 'TokenList',
  CreateTokenResponse: 'CreateTokenResponse',
  PasswordLinkResponse: 'PasswordLinkResponse',
  AdminUser: 'AdminUser',
  AdminUserList: 'AdminUserList',
  PlanChangeResponse: 'PlanChangeResponse',
  WebhookRequest: 'WebhookRequest',
  Webhook: 'Webhook',
  WebhookList: 'WebhookList',
  WebhookDelivery: 'WebhookDelivery',
  DeliveryList: 'DeliveryList',
  WebhookEvent: 'WebhookEvent',
  UsageRow: 'UsageRow',
  UsageReport: 'UsageReport',
  Secret: 'Secret',
  SecretList: 'SecretList',
  SecretResponse: 'SecretResponse',
  AuditEntry: 'AuditEntry',
  AuditLog: 'AuditLog',
};

/** Schemas without a TS interface: request bodies the client builds inline from its arguments. */
const SCHEMAS_WITHOUT_INTERFACE = new Set([
  'ContainerActionRequest', // containerAction(userId, action)
  'StartRequest', // startAutomation(userId, workflow, config)
  'PlanChangeRequest', // setPlan(userId, plan)
  'LoginRequest', // login(email, password)
  'AdminLoginRequest', // adminLogin(token)
  'SetPasswordRequest', // setPassword(token, password)
  'CreateTokenRequest', // createToken(name)
  'SecretRequest', // putSecret(userId, name, value)
]);

/** queryKeys lists the names a call's ${query({ … })} sends: its keys, and a spread argument's interface fields. */
function queryKeys(c: ClientCall): string[] {
  if (!c.queryArg) return [];
  const arg = c.queryArg.trim().replace(/^\{|\}$/g, '');
  const keys: string[] = [];
  for (const part of arg.split(',').map((x) => x.trim()).filter(Boolean)) {
    const spread = /^\.\.\.(\w+)$/.exec(part);
    if (spread) {
      const t = new RegExp(`\\b${spread[1]}\\??\\s*:\\s*T\\.(\\w+)`).exec(c.params);
      if (!t) throw new Error(`${c.name}(): cannot find the type of ...${spread[1]}`);
      keys.push(...fieldsOf(t[1]).keys());
    } else keys.push(/^(\w+)/.exec(part)![1]);
  }
  return keys;
}

/** Described query parameters the client deliberately does not send, as "METHOD /path name". */
const QUERY_NOT_SENT = new Set<string>([
  // (none)
]);

const schemaName = (ref: string) => ref.replace('#/components/schemas/', '');

function successSchema(op: Operation): Schema | undefined {
  for (const [code, r] of Object.entries(op.responses ?? {})) {
    if (code.startsWith('2')) return r.content?.['application/json']?.schema;
  }
  return undefined;
}

const sorted = (xs: Iterable<string>) => [...xs].sort();

describe('the client against openapi.json', () => {
  const ops = describedOps();
  const calls = clientCalls();

  it('finds every client call', () => {
    // A call this file's pattern cannot read would escape every check below.
    const all = clientSrc.match(/return this\.request(Text)?\b/g) ?? [];
    expect(calls.length).toBeGreaterThan(30);
    expect(calls.length, 'calls of the form name(…): Promise<R> { return this.request(…) }').toBe(all.length);
  });

  it('calls only described operations', () => {
    const undescribed = calls.filter((c) => !ops.has(c.op)).map((c) => `${c.name}(): ${c.op} is not in internal/server/openapi.json`);
    expect(undescribed).toEqual([]);
  });

  it('has a method for every /api/ operation', () => {
    const called = new Set(calls.map((c) => c.op));
    const missing = sorted(ops.keys())
      .filter((op) => op.split(' ')[1].startsWith('/api/') && !called.has(op) && !NOT_WRAPPED.has(op))
      .map((op) => `${ops.get(op)!.described} has no method in clients/typescript/src/client.ts (add one, or list it in NOT_WRAPPED with why)`);
    expect(missing).toEqual([]);
    const stale = sorted(NOT_WRAPPED).filter((op) => !ops.has(op) || called.has(op));
    expect(stale, 'NOT_WRAPPED entries that are wrapped or not described').toEqual([]);
  });

  it('sends exactly the described query parameters', () => {
    const wrong: string[] = [];
    for (const c of calls) {
      const op = ops.get(c.op);
      if (!op) continue;
      const described = new Set((op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name));
      const sent = new Set(queryKeys(c));
      for (const k of sent) if (!described.has(k)) wrong.push(`${c.name}() sends ?${k}=, which ${op.described} does not describe`);
      for (const k of described) {
        if (!sent.has(k) && !QUERY_NOT_SENT.has(`${op.described} ${k}`)) wrong.push(`${c.name}() cannot send ?${k}= of ${op.described}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("answers each method with its operation's schema", () => {
    const wrong: string[] = [];
    for (const c of calls) {
      if (c.text) {
        // requestText: a text answer (e.g. text/csv) that the operation describes as a string.
        const content = Object.entries(ops.get(c.op)?.responses ?? {}).find(([code]) => code.startsWith('2'))?.[1].content ?? {};
        const textual = Object.entries(content).some(([type, v]) => type.startsWith('text/') && v.schema?.type === 'string');
        if (!textual || c.returns !== 'string') wrong.push(`${c.name}(): ${c.op} has no text/* string answer for Promise<${c.returns}>`);
        continue;
      }
      const ref = successSchema(ops.get(c.op) ?? {})?.$ref;
      if (!ref) continue; // free-form answers (openapi.json, CSV)
      const want = schemaName(ref);
      const m = /^T\.(\w+)$/.exec(c.returns);
      const got = m ? TS_TO_SCHEMA[m[1]] : undefined;
      if (got !== want) wrong.push(`${c.name}(): ${c.op} answers ${want}, the method returns Promise<${c.returns}>`);
    }
    expect(wrong).toEqual([]);
  });

  it('has an interface for every schema', () => {
    const mapped = new Set(Object.values(TS_TO_SCHEMA));
    const unmapped = sorted(Object.keys(doc.components.schemas)).filter((s) => !mapped.has(s) && !SCHEMAS_WITHOUT_INTERFACE.has(s));
    expect(unmapped.map((s) => `schema ${s} has no interface in TS_TO_SCHEMA`)).toEqual([]);
    const stale = sorted(Object.values(TS_TO_SCHEMA)).filter((s) => !doc.components.schemas[s]);
    expect(stale.map((s) => `TS_TO_SCHEMA names ${s}, which openapi.json lacks`)).toEqual([]);
  });

  describe.each(Object.entries(TS_TO_SCHEMA))('interface %s', (ts, schema) => {
    const s = doc.components.schemas[schema];
    const props = s?.properties ?? {};
    const required = new Set(s?.required ?? []);

    it(`has the properties of schema ${schema}`, () => {
      expect(s, `openapi.json has no schema ${schema}`).toBeDefined();
      const fields = fieldsOf(ts);
      const missing = sorted(Object.keys(props)).filter((p) => !fields.has(p));
      const extra = sorted(fields.keys()).filter((f) => !(f in props));
      expect({ missing, extra }).toEqual({ missing: [], extra: [] });
    });

    it('is optional exactly where the schema does not require', () => {
      const fields = fieldsOf(ts);
      const wrong: string[] = [];
      for (const [name, f] of fields) {
        if (!(name in props)) continue;
        if (required.has(name) && f.optional) wrong.push(`${name} is required in ${schema} but optional in ${ts}`);
        if (!required.has(name) && !f.optional) wrong.push(`${name} may be absent (not required in ${schema}) but is not optional in ${ts}`);
      }
      expect(wrong).toEqual([]);
    });

    it('is `| null` exactly where the schema is nullable', () => {
      const fields = fieldsOf(ts);
      const wrong: string[] = [];
      for (const [name, f] of fields) {
        const p = props[name];
        if (!p) continue;
        const nullable = Array.isArray(p.type) && p.type.includes('null');
        const tsNull = /(^|\|)\s*null\s*(\||$)/.test(f.type);
        if (nullable !== tsNull) wrong.push(`${name}: schema type ${JSON.stringify(p.type)}, TS type ${f.type}`);
      }
      expect(wrong).toEqual([]);
    });
  });
});
