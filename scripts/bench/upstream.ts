// A stand-in Anycross trigger on loopback: answers 200 after DELAY_MS.
import { createServer } from 'node:http';

const delay = Number(process.env.DELAY_MS ?? 0);
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"code":0}');
    };
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
});
server.keepAliveTimeout = 30_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const a = server.address();
  console.log(`listening on http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`);
});
