// A hookfleet webhook receiver: Node.js's http module + `standardwebhooks`.
//
//   npm ci
//   PORT=9000 WEBHOOK_SECRET=whsec_... node receiver.js
//
// It verifies each delivery, ignores duplicates (same webhook-id), answers at
// once and does the work afterwards.
"use strict";
const http = require("node:http");
const { Webhook } = require("standardwebhooks");

const port = Number(process.env.PORT || 9000);
const webhook = new Webhook(process.env.WEBHOOK_SECRET);

const seen = new Set(); // webhook-ids already accepted. In production: a table with a unique key.

// The slow part runs here, after hookfleet has its answer.
async function handle(event) {
  if (event.type === "match.found") {
    // e.g. store event.data.match_id and event.data.confidence
  }
}

function answer(res, status, line) {
  console.log(line);
  res.writeHead(status).end();
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST") {
    res.writeHead(405).end();
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks); // the raw bytes: verify before any JSON parsing
    const id = req.headers["webhook-id"] || "-";
    let event;
    let type;
    try {
      // Checks the signature and the timestamp (5 minutes), returns the parsed body.
      event = webhook.verify(body, req.headers);
      type = event.type;
    } catch (e) {
      answer(res, 400, `rejected ${id} ${e.message}`);
      return;
    }
    if (seen.has(id)) {
      answer(res, 204, `duplicate ${id}`);
      return;
    }
    seen.add(id);
    answer(res, 204, `verified ${id} ${type}`);
    // Work after the answer. A failure here is yours to retry: hookfleet got its 204.
    setImmediate(() => handle(event).catch((e) => console.error(`could not handle ${id}: ${e.message}`)));
  });
});

server.listen(port, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${port}`);
});
