/**
 * nginx (Debian's package) serving a directory of static binary caches on a loopback port, as a
 * self-hoster serves `nix copy --to file://` output. Its own config in a temporary directory, run
 * in the foreground as root; no system service is touched.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

export interface NginxServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Debian's defaults (worker_processes auto, sendfile), with the access log off (Narwhal runs
 * without request logging too) and keep-alive connections not recycled after 1000 requests, so
 * the baseline is not handicapped in the lookup figure.
 */
export async function startNginx(root: string, workDir: string): Promise<NginxServer> {
  await mkdir(join(workDir, 'tmp'), { recursive: true });
  const port = await freePort();
  const conf = join(workDir, 'nginx.conf');
  await writeFile(
    conf,
    `worker_processes auto;
daemon off;
user root;
pid ${join(workDir, 'nginx.pid')};
error_log stderr warn;
events { worker_connections 1024; }
http {
  types { text/x-nix-narinfo narinfo; text/plain nix-cache-info; }
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  access_log off;
  client_body_temp_path ${join(workDir, 'tmp')};
  proxy_temp_path ${join(workDir, 'tmp')};
  fastcgi_temp_path ${join(workDir, 'tmp')};
  uwsgi_temp_path ${join(workDir, 'tmp')};
  scgi_temp_path ${join(workDir, 'tmp')};
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', workDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}:\n${log}`);
    // Refused connections are expected until nginx listens; any HTTP answer means it is up.
    const up = await fetch(`${url}/`, { method: 'HEAD' }).then(
      () => true,
      () => false,
    );
    if (up) break;
    if (attempt > 100) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not start listening on ${url}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGQUIT');
      await exited;
    },
  };
}

/** A loopback port free at the time of asking (nginx cannot report one it picked itself). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return address.port;
}
