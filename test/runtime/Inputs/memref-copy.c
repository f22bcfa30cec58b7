// Calls the runtime's memrefCopy (runtime/model/MemRefCopy.cpp) the way
// the LLVM lowering of memref.copy does, with unranked descriptors, and
// prints what it copied.
#include <stdint.h>
#include <stdio.h>

typedef struct {
  int64_t rank;
  void *descriptor;
} Unranked;

void memrefCopy(int64_t elementSize, Unranked *source, Unranked *target);

typedef struct {
  void *allocated, *aligned;
  int64_t offset, sizes[2], strides[2];
} Ranked2;

typedef struct {
  void *allocated, *aligned;
  int64_t offset, sizes[1], strides[1];
} Ranked1;

static void print(const char *what, const int32_t *a, int n) {
  printf("%s:", what);
  for (int i = 0; i < n; ++i)
    printf(" %d", a[i]);
  printf("\n");
}

int main(void) {
  int32_t src[20], dst[12];
  for (int i = 0; i < 20; ++i)
    src[i] = i;

  // A 3x4 window at offset 1 of a 4x5 array (row stride 5) into a dense 3x4.
  Ranked2 from = {src, src, 1, {3, 4}, {5, 1}};
  Ranked2 to = {dst, dst, 0, {3, 4}, {4, 1}};
  Unranked f = {2, &from}, t = {2, &to};
  memrefCopy(sizeof(int32_t), &f, &t);
  print("window", dst, 12);

  // Every other element (stride 2) into a dense vector at offset 2.
  for (int i = 0; i < 12; ++i)
    dst[i] = -1;
  Ranked1 evens = {src, src, 0, {5}, {2}};
  Ranked1 into = {dst, dst, 2, {5}, {1}};
  Unranked e = {1, &evens}, i1 = {1, &into};
  memrefCopy(sizeof(int32_t), &e, &i1);
  print("strided", dst, 12);

  // Nothing to copy.
  Ranked1 none = {src, src, 0, {0}, {1}};
  Unranked n = {1, &none};
  memrefCopy(sizeof(int32_t), &n, &i1);
  print("empty", dst, 12);
  return 0;
}
