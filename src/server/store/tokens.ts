// Named credentials (worker and reader tokens). Only their verifiers are kept (see
// src/protocol/auth.ts): the token itself is shown once, when it is made, and never stored.
// The admin token stays in DIR/token, outside the database.
import type Database from 'better-sqlite3';

export type TokenKind = 'worker' | 'reader';

export interface TokenRow {
  name: string;
  kind: TokenKind;
  stored_key: Buffer;
  server_key: Buffer;
  created: number;
}

export function tokenStatements(db: Database.Database) {
  const q = {
    add: db.prepare<[string, TokenKind, Buffer, Buffer, number]>(
      'INSERT INTO tokens (name, kind, stored_key, server_key, created) VALUES (?, ?, ?, ?, ?)',
    ),
    get: db.prepare<[string], TokenRow>('SELECT * FROM tokens WHERE name = ?'),
    list: db.prepare<[], TokenRow>('SELECT * FROM tokens ORDER BY kind, name'),
    remove: db.prepare<[string]>('DELETE FROM tokens WHERE name = ?'),
  };
  return {
    addToken: (row: TokenRow): void => void q.add.run(row.name, row.kind, row.stored_key, row.server_key, row.created),
    token: (name: string): TokenRow | undefined => q.get.get(name),
    tokens: (): TokenRow[] => q.list.all(),
    /** true when there was such a token */
    removeToken: (name: string): boolean => q.remove.run(name).changes > 0,
  };
}
