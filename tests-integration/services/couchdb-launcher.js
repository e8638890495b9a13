#!/usr/bin/env node
// A CouchDB-compatible server for tests-integration: express-pouchdb 4.2 on
// 127.0.0.1, started by tests-integration/services/up.
//
//   node couchdb-launcher.js --modules DIR --data DIR [--host H] [--port P]
//                            [--storage leveldb|memory]
//
// --modules is the npm prefix that `up` installed express-pouchdb into (with
// --ignore-scripts, so nothing was compiled). Storage is LevelDB on disk by
// default: leveldown 5 ships N-API prebuilt binaries that load without its
// install script. If that binary cannot load on this platform, the launcher
// falls back to the pure-JavaScript in-memory adapter (memdown) and says so.
//
// Two fixes over the stock pouchdb-server, both needed by pycouchdb:
//  1. no response compression: gzip buffers a continuous _changes feed, so the
//     client never sees a change;
//  2. GET/HEAD on a document carries `ETag: "<_rev>"` as CouchDB does, instead
//     of Express's body hash; pycouchdb deletes by id through that header.
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

function parseArgs(argv) {
  const options = { host: '127.0.0.1', port: '5984', storage: 'leveldb' };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (!name.startsWith('--') || value === undefined) {
      throw new Error(`bad argument ${name}; expected --name value pairs`);
    }
    options[name.slice(2)] = value;
  }
  for (const required of ['modules', 'data']) {
    if (!options[required]) {
      throw new Error(`--${required} is required`);
    }
  }
  return options;
}

// Mirrors CouchDB's document routes: /db/docid, /db/_design/x, /db/_local/x.
function isDocumentPath(urlPath) {
  const parts = urlPath.split('/').filter(Boolean);
  if (parts.length === 2) {
    return !parts[0].startsWith('_') && !parts[1].startsWith('_');
  }
  return parts.length === 3 && !parts[0].startsWith('_') &&
    (parts[1] === '_design' || parts[1] === '_local');
}

function revisionEtag(req, res, next) {
  if ((req.method === 'GET' || req.method === 'HEAD') && isDocumentPath(req.path)) {
    const send = res.send;
    res.send = function sendWithRevisionEtag(body) {
      if (typeof body === 'string' || Buffer.isBuffer(body)) {
        try {
          const doc = JSON.parse(body.toString());
          if (doc && typeof doc._rev === 'string') {
            res.set('ETag', `"${doc._rev}"`);
          }
        } catch (_notJson) {
          // Attachments and errors keep whatever ETag Express gives them.
        }
      }
      return send.call(this, body);
    };
  }
  next();
}

function storageAdapter(load, wanted) {
  if (wanted === 'leveldb') {
    try {
      load('leveldown');
      return { plugin: load('pouchdb-adapter-leveldb'), name: 'leveldb' };
    } catch (error) {
      console.warn(`leveldown does not load (${error.message}); using memory`);
    }
  } else if (wanted !== 'memory') {
    throw new Error(`unknown --storage ${wanted}; use leveldb or memory`);
  }
  return { plugin: load('pouchdb-adapter-memory'), name: 'memory' };
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const load = createRequire(path.join(path.resolve(options.modules), 'package.json'));
  const express = load('express');
  const expressPouchDB = load('express-pouchdb');
  const storage = storageAdapter(load, options.storage);
  const dataDir = path.resolve(options.data);
  fs.mkdirSync(dataDir, { recursive: true });

  const PouchDB = load('pouchdb-core')
    .plugin(load('pouchdb-adapter-http'))
    .plugin(load('pouchdb-replication'))
    .plugin(load('pouchdb-mapreduce'))
    .plugin(storage.plugin)
    .defaults({ prefix: dataDir + path.sep });

  const couch = expressPouchDB(PouchDB, {
    mode: 'fullCouchDB',
    configPath: path.join(dataDir, 'config.json'),
    logPath: path.join(dataDir, 'log.txt'),
    overrideMode: { exclude: ['compression'] },
  });

  const app = express();
  app.disable('x-powered-by');
  app.use(revisionEtag);
  app.use(couch);

  const server = app.listen(Number(options.port), options.host, () => {
    console.log(
      `couchdb-launcher: express-pouchdb on http://${options.host}:${options.port}/` +
      ` storage=${storage.name} data=${dataDir}`
    );
  });
  server.on('error', (error) => {
    console.error(`couchdb-launcher: ${error.message}`);
    process.exit(1);
  });
  // Exit at once: an open continuous _changes feed would hold server.close().
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => process.exit(0));
  }
}

try {
  main();
} catch (error) {
  console.error(`couchdb-launcher: ${error.message}`);
  process.exit(2);
}
