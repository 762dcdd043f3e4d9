/** The table of bzip2's CRC: CRC-32 with polynomial 0x04c11db7, most significant bit first. */
export const BZIP2_CRC_TABLE: Int32Array = (() => {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[i] = c;
  }
  return table;
})();

/** bzip2's CRC of data, as an unsigned number. */
export function bzip2Crc(data: Uint8Array): number {
  let crc = -1;
  for (let i = 0; i < data.length; i++) crc = (crc << 8) ^ BZIP2_CRC_TABLE[((crc >>> 24) ^ data[i]) & 0xff];
  return ~crc >>> 0;
}
