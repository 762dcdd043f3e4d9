import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isNarwhalError } from '../../src/errors.ts';
import { formatStorageLocation, parseStorageUrl } from '../../src/storage/storage-url.ts';

test('a path is a local directory', () => {
  assert.deepEqual(parseStorageUrl('/var/lib/narwhal/castr'), { kind: 'local', path: '/var/lib/narwhal/castr' });
  assert.deepEqual(parseStorageUrl('relative/dir'), { kind: 'local', path: 'relative/dir' });
  assert.deepEqual(parseStorageUrl('dir:with:colons'), { kind: 'local', path: 'dir:with:colons' });
});

test('an s3 URL with every parameter', () => {
  assert.deepEqual(
    parseStorageUrl('s3://my-bucket/narwhal/chunks?endpoint=http://127.0.0.1:7480&region=eu-west-1&path-style=1'),
    {
      kind: 's3',
      bucket: 'my-bucket',
      prefix: 'narwhal/chunks',
      endpoint: 'http://127.0.0.1:7480',
      region: 'eu-west-1',
      pathStyle: true,
    },
  );
});

test('s3 defaults: no prefix, AWS endpoint, us-east-1, virtual-hosted style', () => {
  for (const url of ['s3://bucket', 's3://bucket/', 's3://bucket/?']) {
    assert.deepEqual(parseStorageUrl(url), {
      kind: 's3',
      bucket: 'bucket',
      prefix: '',
      endpoint: undefined,
      region: 'us-east-1',
      pathStyle: false,
    });
  }
  assert.equal((parseStorageUrl('s3://bucket/p/?path-style=0') as { pathStyle: boolean }).pathStyle, false);
  assert.equal((parseStorageUrl('s3://bucket/p/?path-style=true') as { pathStyle: boolean }).pathStyle, true);
});

test('the prefix loses trailing slashes and is %-decoded; the endpoint is normalised', () => {
  const parsed = parseStorageUrl('s3://b.with.dots/a%20b/c//?endpoint=HTTPS://S3.Example.com:443');
  assert.equal(parsed.kind, 's3');
  if (parsed.kind !== 's3') return;
  assert.equal(parsed.prefix, 'a b/c');
  assert.equal(parsed.endpoint, 'https://s3.example.com');
});

test('the endpoint may be %-encoded in the query', () => {
  const parsed = parseStorageUrl(`s3://bucket/p?endpoint=${encodeURIComponent('http://10.0.0.5:9000')}`);
  assert.equal(parsed.kind === 's3' && parsed.endpoint, 'http://10.0.0.5:9000');
});

test('formatStorageLocation gives back a URL that parses the same', () => {
  for (const url of [
    's3://bucket/a%20b/c?endpoint=http%3A%2F%2F127.0.0.1%3A7480&region=eu-west-1&path-style=1',
    's3://bucket/',
    '/data/castr',
  ]) {
    assert.equal(formatStorageLocation(parseStorageUrl(url)), url);
    assert.deepEqual(parseStorageUrl(formatStorageLocation(parseStorageUrl(url))), parseStorageUrl(url));
  }
});

const refusals: [string, RegExp][] = [
  ['', /empty/],
  ['gs://bucket/p', /unsupported storage URL scheme gs:\/\//],
  ['file:///tmp/x', /unsupported storage URL scheme file:\/\//],
  ['s3://', /names no bucket/],
  ['s3:///prefix', /names no bucket/],
  ['s3://Bucket/p', /not a valid S3 bucket name/],
  ['s3://b/p', /not a valid S3 bucket name/],
  ['s3://bucket_under/p', /not a valid S3 bucket name/],
  ['s3://bucket:9000/p', /not a valid S3 bucket name/],
  ['s3://192.168.1.1/p', /not a valid S3 bucket name/],
  ['s3://a..b/p', /not a valid S3 bucket name/],
  ['s3://key:secret@bucket/p', /no credentials in the storage URL/],
  ['s3://bucket//p', /empty path segment/],
  ['s3://bucket/a//b', /empty path segment/],
  ['s3://bucket/a/../b', /\. or \.\. segments/],
  ['s3://bucket/%zz', /malformed %-escape/],
  ['s3://bucket/p#frag', /no #fragment/],
  ['s3://bucket/p?pathstyle=1', /unknown storage URL parameter "pathstyle"/],
  ['s3://bucket/p?region=a&region=b', /given twice/],
  ['s3://bucket/p?path-style=yes', /path-style=yes must be 1 or 0/],
  ['s3://bucket/p?region=EU%20West', /not a region name/],
  ['s3://bucket/p?endpoint=localhost:9000', /must be an http/],
  ['s3://bucket/p?endpoint=not%20a%20url', /not a URL/],
  ['s3://bucket/p?endpoint=ftp://host', /must be an http/],
  ['s3://bucket/p?endpoint=http://host/path', /only a scheme, host and port/],
  ['s3://bucket/p?endpoint=http://u:p@host', /no credentials in the endpoint/],
];

for (const [url, message] of refusals) {
  test(`refused: ${JSON.stringify(url)}`, () => {
    assert.throws(
      () => parseStorageUrl(url),
      (err: unknown) => isNarwhalError(err, 'bad-request') && message.test(err.message),
    );
  });
}
