// The committed op reference must match what TableGen generates from the
// .td files; regenerate with: cp build/dialect/MoeDialect.md docs/dialect.md
// RUN: diff -u %moec_src_root/docs/dialect.md %moec_obj_root/dialect/MoeDialect.md
