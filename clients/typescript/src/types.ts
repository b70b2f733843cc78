// Wire types of the Berth API (docs/API.md). Times are RFC 3339 strings.

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

export type ErrorCode =
  | 'invalid_argument'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'too_large'
  | 'quota_exceeded'
  | 'insufficient_capacity'
  | 'unavailable'
  | 'internal';

export interface User {
  user_id: string;
  email: string;
  plan: string;
  created_at: string;
}

export interface Limits {
  memory_bytes: number;
  cpus: number;
  pids_limit: number;
  actions_per_day: number;
}

export interface Usage {
  cpu_percent: number;
  memory_bytes: number;
  memory_limit_bytes: number;
  pids: number;
  time: string;
}

export type ContainerStatus = 'creating' | 'running' | 'stopped' | 'restarting' | 'failed' | 'missing' | 'removed';

export interface Container {
  exists: boolean;
  user_id: string;
  container_id?: string;
  container_name?: string;
  status?: ContainerStatus;
  health?: string;
  last_error?: string;
  exit_code?: number;
  oom_killed?: boolean;
  /** OOM kills inside the running container since it started */
  oom_kills?: number;
  /** the OCI runtime: runc, or runsc for the gVisor tier */
  runtime?: string;
  plan?: string;
  image?: string;
  limits?: Limits;
  effective_limits?: Limits;
  websocket_url?: string;
  created_at?: string;
  started_at: string | null;
  uptime_seconds: number;
  total_actions: number;
  usage?: Usage;
  /** When the container was last active; absent when none was seen since the control plane started. */
  last_activity?: string;
  /** When it will be stopped as idle; absent when its plan never stops it or it is not running. */
  idle_stop_at?: string;
  /** Automatic restarts within the crash-loop window. */
  restarts?: number;
}

export interface Health {
  status: 'healthy' | 'unhealthy';
  timestamp: string;
  docker: string;
  version: string;
}

export interface OnboardRequest {
  user_id: string;
  email: string;
  plan: string;
}

export interface OnboardResponse {
  success: true;
  user: User;
  token: string;
  created: boolean;
  container: Container;
}

export interface CreateContainerRequest {
  user_id: string;
  plan: string;
  anthropic_api_key?: string;
}

export type ContainerAction = 'start' | 'stop' | 'restart' | 'remove';

export interface CreateContainerResponse {
  success: true;
  container: Container;
}

export interface ContainerActionResponse {
  success: true;
  action: ContainerAction;
  user_id: string;
  status?: string;
}

export interface LogsResponse {
  user_id: string;
  logs: string;
}

export interface ContainerList {
  total: number;
  containers: Container[];
}

export type AutomationState = 'idle' | 'running' | 'completed' | 'failed' | 'stopped' | string;

export interface AutomationStatus {
  success?: boolean;
  state: AutomationState;
  workflow?: string;
  config?: Record<string, unknown>;
  started_at: string | null;
  finished_at?: string;
  exit_code?: number;
  error?: string;
  today: Record<string, number>;
  remaining: Record<string, number>;
}

export interface StartResponse {
  success: true;
  workflow: string;
  state: AutomationState;
  started_at: string | null;
}

export interface StopResponse {
  success: true;
  state: AutomationState;
  workflow?: string;
}

export interface WorkflowList {
  workflows: Workflow[];
}

export interface Workflow {
  name: string;
  description?: string;
  actions?: string[];
  config?: Record<string, unknown>;
}

/** One event of a WebSocket stream, or one stored action. */
export interface BerthEvent {
  type: 'action' | 'status' | 'log' | 'quota_denied' | 'dropped' | string;
  seq?: number;
  action?: string;
  target?: string;
  success?: boolean;
  timestamp: string;
  details?: unknown;
  user_id?: string;
  container?: string;
  state?: string;
  workflow?: string;
  stream?: 'stdout' | 'stderr';
  line?: string;
  reason?: string;
  count?: number;
  exit_code?: number;
}

/** An action event: type "action" with its seq. */
export interface ActionEvent extends BerthEvent {
  type: 'action';
  seq: number;
  action: string;
  success: boolean;
}

export interface ActionsPage {
  user_id?: string;
  count: number;
  actions: ActionEvent[];
}

export interface ActionsQuery {
  limit?: number;
  after_seq?: number;
  before_seq?: number;
  action?: string;
  success?: boolean;
  since?: string;
  until?: string;
  order?: 'asc' | 'desc';
}

// Accounts.

export interface SignupRequest {
  email: string;
  password: string;
  user_id?: string;
}

export interface SessionResponse {
  success: true;
  user?: User;
  admin: boolean;
  csrf_token: string;
  expires_at: string;
}

export interface AuthConfig {
  signup: boolean;
}

export interface Me {
  user?: User;
  admin: boolean;
  auth: 'session' | 'token';
  csrf_token?: string;
}

export interface MyContainerResponse {
  success: true;
  container: Container;
}

export interface TokenInfo {
  id: string;
  name: string;
  created_at: string;
}

export interface CreateTokenResponse extends TokenInfo {
  success: true;
  token: string;
}

export interface PasswordLinkResponse {
  success: true;
  user_id: string;
  url: string;
  expires_at: string;
}

export interface AdminUser extends User {
  has_password: boolean;
  container_status: ContainerStatus | 'none';
  actions_today: number;
}

export interface AdminUserList {
  total: number;
  users: AdminUser[];
}

/** How containers[i] got the new plan's limits. */
export type PlanApplied = 'live' | 'recreated' | 'recorded';

/** Answers PUT /api/users/{user_id}/plan; success is false when only some containers changed. */
export interface PlanChangeResponse {
  success: boolean;
  user: User;
  containers: Container[];
  applied: PlanApplied[];
}

/** @deprecated the server answers a PlanChangeResponse. */
export type PlanResponse = PlanChangeResponse;

/** {"success":true} answers (logout, deletes: with the deleted id). */
export interface SuccessResponse {
  success: true;
  id?: string;
}

export interface TokenList {
  tokens: TokenInfo[];
}

/** A lifecycle event of a container (GET /api/containers/{user_id}/events). */
export interface LifecycleEvent {
  id: number;
  container_name: string;
  user_id: string;
  event: string;
  reason?: string;
  time: string;
}

export interface ContainerEventList {
  user_id: string;
  count: number;
  /** Newest first. */
  events: LifecycleEvent[];
}

/** Filters of GET /api/admin/actions: the per-user ones plus user_id. */
export interface AdminActionsQuery extends ActionsQuery {
  user_id?: string;
}

// Operator tools (docs/OPERATIONS.md).

export type WebhookEventName =
  | 'automation.failed'
  | 'container.oom_killed'
  | 'container.died'
  | 'container.crash_looping'
  | 'container.idle_stopped'
  | 'quota.exhausted'
  | 'plan.changed';

/** Body of POST …/webhooks; no events means every event. */
export interface WebhookRequest {
  url: string;
  events?: (WebhookEventName | string)[];
}

export interface Webhook {
  id: string;
  /** Absent for the admin's webhooks (every user's events). */
  user_id?: string;
  url: string;
  events: string[];
  /** Only in the answer to the registration. */
  secret?: string;
  created_at: string;
}

export interface WebhookList {
  webhooks: Webhook[];
}

export interface WebhookDelivery {
  id: number;
  event_id: string;
  event: string;
  attempt: number;
  status_code: number;
  outcome: 'delivered' | 'failed' | 'gave_up' | string;
  error?: string;
  duration_ms: number;
  time: string;
}

export interface DeliveryList {
  webhook_id: string;
  /** Newest first. */
  deliveries: WebhookDelivery[];
}

/** The JSON body of every webhook delivery. */
export interface WebhookEvent {
  id: string;
  type: WebhookEventName | string;
  time: string;
  user_id?: string;
  container?: string;
  data?: Record<string, unknown>;
}

/** GET /api/admin/usage: UTC days YYYY-MM-DD, inclusive; default this month to today. */
export interface UsageQuery {
  from?: string;
  to?: string;
}

export interface UsageRow {
  user_id: string;
  day: string;
  plan: string;
  runtime: string;
  running_seconds: number;
  peak_memory_bytes: number;
  /** By action type; only on the day's first row of that user. */
  actions: Record<string, number>;
  actions_total: number;
}

export interface UsageReport {
  from: string;
  to: string;
  rows: UsageRow[];
}

/** A tenant secret as the API shows it: the value is write-only. */
export interface Secret {
  name: string;
  /** masked, e.g. "sk-…f3a9" */
  hint: string;
  updated_at: string;
}

export interface SecretList {
  user_id: string;
  secrets: Secret[];
  /** when a change reaches the containers */
  applies: string;
}

export interface SecretResponse {
  success: boolean;
  user_id: string;
  secret?: Secret;
  applies: string;
}

/** One admin action: who did what to whom, when, from where. */
export interface AuditEntry {
  id: number;
  time: string;
  actor: string;
  method: string;
  route: string;
  target_user: string;
  remote_addr: string;
  status: number;
}

export interface AuditLog {
  entries: AuditEntry[];
}
