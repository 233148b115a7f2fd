// Type declarations of chat-client.js (docs/client.md).

export declare const FINAL_CODES: readonly number[];

export declare const Code: Readonly<{
  CONNECTED: 1000; CLOSING: 1001; SYNC_NEEDED: 1002; PONG: 1003; TOKEN_EXPIRING: 1004;
  MESSAGE: 2000; DELIVERED: 2100; STORED_OFFLINE: 2101; PAGE_END: 2200;
  READ_APPLIED: 2300; READ_BY: 2301; TOKEN_REFRESHED: 2400; CONFIRMED: 2500; TYPING: 2600;
  EDITED: 2700; EDIT_APPLIED: 2701; DELETED: 2710; DELETE_APPLIED: 2711;
  CONVERSATION_UPDATE: 2800; BAD_FRAME: 4000; TOKEN_REFUSED: 4001; NOT_ALLOWED: 4003;
  NOT_FOUND: 4004; EDIT_WINDOW: 4008; STRANGER_LIMIT: 4029; TOO_LONG: 4130;
  RATE_LIMITED: 4290; TYPING_TOO_FAST: 4291; STORAGE_UNAVAILABLE: 5000;
}>;

/** Every server frame: `code`, `content`, `from`, and the fields of its code. */
export interface Frame {
  code: number;
  content: string;
  from: string;
  [field: string]: unknown;
}

/** A message (code 2000). */
export interface Message extends Frame {
  id: string;
  sender_id: number;
  recipient_id?: number;
  group_id?: string;
  ts: number;
  source: "live" | "unread" | "history";
  client_msg_id?: string;
  edited_at?: number;
  deleted?: boolean;
  deleted_at?: number;
}

/** An acknowledgement: 2100/2101 (sends), 2701 (edit), 2711 (delete). */
export interface Ack extends Frame {
  id: string;
  ts?: number;
  client_msg_id: string;
  recipient_id?: number;
  group_id?: string;
  edited_at?: number;
  deleted_at?: number;
}

export type Conversation = { userId: number | string } | { groupId: string };

export type ConnectionState =
  | "idle" | "connecting" | "syncing" | "open" | "waiting" | "unauthorized" | "replaced" | "closed";

export interface StateDetail {
  state: ConnectionState;
  code?: number;
  reason?: string;
  delayMs?: number;
  attempt?: number;
}

export interface Problem {
  code: number;
  reason: string;
  frame?: Frame;
  retrying?: boolean;
}

export interface ChatEvents {
  state: StateDetail;
  connected: { userId: number };
  message: Message;
  ack: Ack;
  sending: { clientMsgId: string; attempt: number };
  receipt: Frame & { id: string; reader_id: number; recipient_id?: number; group_id?: string };
  typing: Frame & { sender_id: number; state: "start" | "stop"; recipient_id?: number; group_id?: string };
  edited: Frame & { id: string; sender_id: number; edited_at: number };
  deleted: Frame & { id: string; sender_id: number; deleted_at: number };
  conversation: Frame & { change: "joined" | "left" | "deleted"; group_id: string };
  synced: { count: number };
  resync: Record<string, never>;
  auth: { reason: string };
  replaced: { code: number; reason: string };
  tokenexpiring: { expiresAt: number };
  problem: Problem;
  frame: Frame;
}

export declare class ChatError extends Error {
  code: number;
  reason: string;
  frame: Frame | null;
}

export declare class ApiError extends Error {
  status: number;
}

export interface ChatClientOptions {
  token: string;
  deviceId: string;
  url?: string;
  baseUrl?: string;
  getToken?: (reason: string) => Promise<string | null>;
  ackTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  syncPageSize?: number;
  maxSendAttempts?: number;
  seenIds?: number;
  WebSocket?: typeof WebSocket;
}

export interface ConversationEntry {
  kind: "private" | "group";
  peer_id?: number;
  group_id?: string;
  name?: string;
  last_message: { id: string; sender_id: number; preview: string; ts: number } | null;
  unread: number;
  read_upto: string | null;
  peer_read_upto?: string | null;
}

export interface Group {
  id: string;
  name: string;
  description?: string;
  icon?: string;
  owner_id: number;
  member_count?: number;
  created_at: number;
}

export declare class ChatClient extends EventTarget {
  constructor(options: ChatClientOptions);
  readonly url: string;
  readonly baseUrl: string;
  readonly deviceId: string;
  userId: number;
  token: string;
  state: ConnectionState;

  connect(): void;
  close(): void;
  drop(): void;
  setToken(token: string): void;
  on<K extends keyof ChatEvents>(name: K, listener: (detail: ChatEvents[K]) => void): () => void;

  sendPrivate(recipientId: number | string, content: string, clientMsgId?: string): Promise<Ack>;
  sendGroup(groupId: string, content: string, clientMsgId?: string): Promise<Ack>;
  edit(messageId: string, content: string, clientMsgId?: string): Promise<Ack>;
  deleteMessage(messageId: string, clientMsgId?: string): Promise<Ack>;
  pending(): { clientMsgId: string; body: Record<string, unknown> }[];
  markRead(messageId: string): Promise<Frame>;
  history(to: Conversation, cursor?: string, limit?: number): Promise<{ messages: Message[]; nextCursor: string }>;
  typing(to: Conversation, state?: "start" | "stop"): boolean;
  catchUp(): Promise<void>;

  api(method: string, path: string, body?: unknown): Promise<any>;
  conversations(options?: { limit?: number; before?: string }): Promise<{ conversations: ConversationEntry[]; next_cursor: string }>;
  groups(): Promise<{ groups: Group[] }>;
  createGroup(options: { name: string; members?: (number | string)[]; description?: string; id?: string }): Promise<Group>;
  group(groupId: string): Promise<Group>;
  deleteGroup(groupId: string): Promise<null>;
  members(groupId: string): Promise<{ group_id: string; members: number[] }>;
  addMember(groupId: string, userId: number | string): Promise<{ group_id: string; user_id: number }>;
  removeMember(groupId: string, userId: number | string): Promise<null>;
  leaveGroup(groupId: string): Promise<null>;
  presence(userIds: (number | string)[]): Promise<{ online: Record<string, boolean> }>;
}

export declare function conversationKey(frame: Frame, me: number): string;
export declare function tokenClaims(token: string): { userId: number; exp: number };
export declare function devToken(baseUrl: string, userId: number | string, ttl?: string): Promise<string>;
export declare function devTokensOn(baseUrl: string): Promise<boolean>;
export declare function randomId(prefix?: string): string;
