;; Anchors of a block of bytes, as WebAssembly: the positions where the gear hash of resemblance.ts
;; (h = (h << 1) + GEAR[byte], so h names the 32 bytes ending there) has its low bits zero. The
;; loop over every byte was most of `narwhal push`'s main-thread time as JavaScript
;; (docs/benchmarks.md, "Push speed"). Source of gear-anchors.wasm, built by `npm run build:wasm`.
;;
;; Memory, laid out by gear-anchors.ts: [0, 1024) the table GEAR, then the block, then the output.
(module
  (memory (export "memory") 1)

  ;; Scans the block [at, at + length) from a hash of 0 and writes, from `out`, a pair of i32 per
  ;; anchor: its hash and its position in the block (at least 31: the first full window). Returns
  ;; the number of anchors.
  (func (export "scan") (param $at i32) (param $length i32) (param $out i32) (param $mask i32) (result i32)
    (local $h i32) (local $pos i32) (local $end i32) (local $warm i32) (local $count i32)
    (local.set $pos (local.get $at))
    (local.set $end (i32.add (local.get $at) (local.get $length)))
    (local.set $warm (i32.add (local.get $at) (i32.const 31)))
    (if (i32.gt_u (local.get $warm) (local.get $end)) (then (local.set $warm (local.get $end))))
    (block $warmed
      (loop $warm
        (br_if $warmed (i32.ge_u (local.get $pos) (local.get $warm)))
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.load8_u (local.get $pos)) (i32.const 2)))))
        (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
        (br $warm)))
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (local.get $pos) (local.get $end)))
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.load8_u (local.get $pos)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then
            (i32.store (local.get $out) (local.get $h))
            (i32.store offset=4 (local.get $out) (i32.sub (local.get $pos) (local.get $at)))
            (local.set $out (i32.add (local.get $out) (i32.const 8)))
            (local.set $count (i32.add (local.get $count) (i32.const 1)))))
        (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
        (br $scan)))
    (local.get $count)))
