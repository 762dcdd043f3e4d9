;; The buzhash chunker of chunker.ts (casync's cut points, the same algorithm step for step), as
;; WebAssembly: it runs faster than the JavaScript loop (i32.rotl, no bounds checks; docs/benchmarks.md, 'Chunker').
;; Source of buzhash-chunker.wasm, built by `npm run build:wasm`; a test checks the two agree.
;;
;; Memory, laid out by wasm-chunker.ts: [0, 1024) the table T, [1024, 2048) T rotated left by 16,
;; the 48 bytes before a block just below it, then the block. The caller passes addresses.
(module
  (memory (export "memory") 1)
  (global $min (mut i32) (i32.const 0))
  (global $max (mut i32) (i32.const 0))
  (global $d (mut i32) (i32.const 0))
  (global $inv (mut i32) (i32.const 0))
  (global $shift (mut i32) (i32.const 0))
  (global $lim (mut i32) (i32.const 0))
  (global $size (export "size") (mut i32) (i32.const 0))
  (global $h (mut i32) (i32.const 0))

  (func (export "configure") (param $min i32) (param $max i32) (param $d i32) (param $inv i32) (param $shift i32) (param $lim i32)
    (global.set $min (local.get $min))
    (global.set $max (local.get $max))
    (global.set $d (local.get $d))
    (global.set $inv (local.get $inv))
    (global.set $shift (local.get $shift))
    (global.set $lim (local.get $lim))
    (call $reset))

  (func $reset (export "reset")
    (global.set $size (i32.const 0))
    (global.set $h (i32.const 0)))

  ;; Scans memory [pos, end) continuing the current chunk. Returns the address just after a cut
  ;; (the state is reset for the next chunk), or 0 when every byte was consumed without one.
  (func (export "next") (param $pos i32) (param $end i32) (result i32)
    (local $size i32) (local $h i32) (local $n i32) (local $limit i32) (local $start i32) (local $inv i32) (local $shift i32) (local $lim i32) (local $out i32)
    (local.set $size (global.get $size))
    (local.set $h (global.get $h))
    ;; Skip: bytes before min - 48 never enter the window.
    (if (i32.lt_u (local.get $size) (i32.sub (global.get $min) (i32.const 48)))
      (then
        (local.set $n (i32.sub (i32.sub (global.get $min) (i32.const 48)) (local.get $size)))
        (if (i32.gt_u (local.get $n) (i32.sub (local.get $end) (local.get $pos)))
          (then
            (global.set $size (i32.add (local.get $size) (i32.sub (local.get $end) (local.get $pos))))
            (return (i32.const 0))))
        (local.set $size (i32.add (local.get $size) (local.get $n)))
        (local.set $pos (i32.add (local.get $pos) (local.get $n)))))
    ;; Seed: the 48 bytes before min fill the window, then the first test at exactly min.
    (if (i32.lt_u (local.get $size) (global.get $min))
      (then
        (block $seeded
          (loop $seed
            (if (i32.ge_u (local.get $pos) (local.get $end))
              (then
                (global.set $size (local.get $size))
                (global.set $h (local.get $h))
                (return (i32.const 0))))
            (local.set $h
              (i32.xor
                (i32.rotl (local.get $h) (i32.const 1))
                (i32.load (i32.shl (i32.load8_u (local.get $pos)) (i32.const 2)))))
            (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
            (local.set $size (i32.add (local.get $size) (i32.const 1)))
            (br_if $seed (i32.lt_u (local.get $size) (global.get $min)))))
        (if (i32.or (i32.ge_u (local.get $size) (global.get $max))
                    (i32.eq (i32.rem_u (local.get $h) (global.get $d)) (i32.sub (global.get $d) (i32.const 1))))
          (then (call $reset) (return (local.get $pos))))))
    ;; Roll: the byte leaving the window is 48 bytes back. Four bytes a turn while four are left
    ;; (one loop test per four bytes, faster than a byte a turn: docs/benchmarks.md, 'Chunker'),
    ;; then a byte a turn.
    ;; Each h is tested with a multiply-and-rotate test that rules out almost every h with
    ;; h mod d != d - 1 without a division (Hacker's Delight 10-17, as in chunker.ts); a candidate
    ;; it lets through is tested exactly, and the roll goes on after it if it fails.
    (local.set $inv (global.get $inv))
    (local.set $shift (global.get $shift))
    (local.set $lim (global.get $lim))
    (local.set $start (local.get $pos))
    (local.set $limit (i32.add (local.get $pos) (i32.sub (global.get $max) (local.get $size))))
    (if (i32.gt_u (local.get $limit) (local.get $end)) (then (local.set $limit (local.get $end))))
    (block $done
      (loop $roll
        (block $candidate
          (block $single
            (br_if $single (i32.gt_u (i32.add (local.get $pos) (i32.const 4)) (local.get $limit)))
            (local.set $out (i32.sub (local.get $pos) (i32.const 48)))
            (local.set $h
              (i32.xor
                (i32.xor
                  (i32.rotl (local.get $h) (i32.const 1))
                  (i32.load offset=1024 (i32.shl (i32.load8_u offset=0 (local.get $out)) (i32.const 2))))
                (i32.load (i32.shl (i32.load8_u offset=0 (local.get $pos)) (i32.const 2)))))
            (if (i32.le_u (i32.rotr (i32.mul (i32.add (local.get $h) (i32.const 1)) (local.get $inv)) (local.get $shift)) (local.get $lim))
              (then (local.set $pos (i32.add (local.get $pos) (i32.const 1))) (br $candidate)))
            (local.set $h
              (i32.xor
                (i32.xor
                  (i32.rotl (local.get $h) (i32.const 1))
                  (i32.load offset=1024 (i32.shl (i32.load8_u offset=1 (local.get $out)) (i32.const 2))))
                (i32.load (i32.shl (i32.load8_u offset=1 (local.get $pos)) (i32.const 2)))))
            (if (i32.le_u (i32.rotr (i32.mul (i32.add (local.get $h) (i32.const 1)) (local.get $inv)) (local.get $shift)) (local.get $lim))
              (then (local.set $pos (i32.add (local.get $pos) (i32.const 2))) (br $candidate)))
            (local.set $h
              (i32.xor
                (i32.xor
                  (i32.rotl (local.get $h) (i32.const 1))
                  (i32.load offset=1024 (i32.shl (i32.load8_u offset=2 (local.get $out)) (i32.const 2))))
                (i32.load (i32.shl (i32.load8_u offset=2 (local.get $pos)) (i32.const 2)))))
            (if (i32.le_u (i32.rotr (i32.mul (i32.add (local.get $h) (i32.const 1)) (local.get $inv)) (local.get $shift)) (local.get $lim))
              (then (local.set $pos (i32.add (local.get $pos) (i32.const 3))) (br $candidate)))
            (local.set $h
              (i32.xor
                (i32.xor
                  (i32.rotl (local.get $h) (i32.const 1))
                  (i32.load offset=1024 (i32.shl (i32.load8_u offset=3 (local.get $out)) (i32.const 2))))
                (i32.load (i32.shl (i32.load8_u offset=3 (local.get $pos)) (i32.const 2)))))
            (if (i32.le_u (i32.rotr (i32.mul (i32.add (local.get $h) (i32.const 1)) (local.get $inv)) (local.get $shift)) (local.get $lim))
              (then (local.set $pos (i32.add (local.get $pos) (i32.const 4))) (br $candidate)))
            (local.set $pos (i32.add (local.get $pos) (i32.const 4)))
            (br $roll))
          (br_if $done (i32.ge_u (local.get $pos) (local.get $limit)))
          (local.set $out (i32.sub (local.get $pos) (i32.const 48)))
            (local.set $h
              (i32.xor
                (i32.xor
                  (i32.rotl (local.get $h) (i32.const 1))
                  (i32.load offset=1024 (i32.shl (i32.load8_u offset=0 (local.get $out)) (i32.const 2))))
                (i32.load (i32.shl (i32.load8_u offset=0 (local.get $pos)) (i32.const 2)))))
            (if (i32.le_u (i32.rotr (i32.mul (i32.add (local.get $h) (i32.const 1)) (local.get $inv)) (local.get $shift)) (local.get $lim))
              (then (local.set $pos (i32.add (local.get $pos) (i32.const 1))) (br $candidate)))
          (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
          (br $roll))
        (if (i32.eq (i32.rem_u (local.get $h) (global.get $d)) (i32.sub (global.get $d) (i32.const 1)))
          (then (call $reset) (return (local.get $pos))))
        (br $roll)))
    (local.set $size (i32.add (local.get $size) (i32.sub (local.get $pos) (local.get $start))))
    (if (i32.ge_u (local.get $size) (global.get $max))
      (then (call $reset) (return (local.get $pos))))
    (global.set $size (local.get $size))
    (global.set $h (local.get $h))
    (i32.const 0))
)
