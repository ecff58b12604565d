/*
 * libfdt baseline for bench/fdt.bench.ts: decode-walk and sequential-write encode throughput of the
 * same DTB files kho is measured on.
 *
 * Usage: walk decode|encode|rw MIN_SECONDS < file-list   (one path per line; all loaded first)
 * Output: one JSON object on stdout:
 *   {"mode":M,"files":N,"bytes":B,"passes":P,"medianMs":X,"bestMs":Y,"result":R,"refused":[..],"maxRssKb":K}
 * where R is the decode checksum (sum of the touches below) or the bytes produced by one encode pass.
 *
 * decode: for every blob, fdt_check_header, then fdt_next_node over every node (fdt_get_name) and
 * fdt_first_property_offset / fdt_next_property_offset / fdt_getprop_by_offset over each node's
 * properties, touching every name (its length) and value (length and first byte).
 * encode: for every blob, a flat list of sequential-write calls is precomputed once (reservations,
 * begin_node/property/end_node in blob order); a pass replays it with fdt_create,
 * fdt_add_reservemap_entry, fdt_finish_reservemap, fdt_begin_node, fdt_property, fdt_end_node,
 * fdt_finish into a preallocated buffer.
 * rw: the same tree built with the read-write API (fdt_create_empty_tree, fdt_add_mem_rsv,
 * fdt_setprop, fdt_add_subnode, then fdt_pack) into a buffer twice the blob's size; files libfdt
 * refuses to build that way are listed by index in "refused" and count 0 bytes.
 * A measurement is a full pass over all files; passes repeat (after one warm-up pass) until at least
 * MIN_SECONDS have passed and at least 5 passes (rw: 2) ran; median and best pass times are reported.
 *
 * Build: cc -O2 -o walk walk.c -lfdt
 */
#define _POSIX_C_SOURCE 200809L
#include <libfdt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct blob {
  char *data;
  size_t size;
};

enum op_kind { OP_BEGIN, OP_PROP, OP_END };
struct op {
  enum op_kind kind;
  const char *name;
  const void *val;
  int len;
};
struct plan {
  struct op *ops;
  size_t nops, cap;
  uint64_t *rsv; /* address, size pairs */
  int nrsv;
  size_t bufsize;
  char *out;
  int rw_refused;
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void die(const char *what, const char *file) {
  fprintf(stderr, "walk: %s: %s\n", file, what);
  exit(1);
}

static uint64_t walk_one(const char *fdt) {
  uint64_t sum = 0;
  if (fdt_check_header(fdt) != 0) return 0;
  int depth = 0;
  for (int node = 0; node >= 0; node = fdt_next_node(fdt, node, &depth)) {
    int nlen = 0;
    const char *nname = fdt_get_name(fdt, node, &nlen);
    if (nname) sum += (uint64_t)nlen;
    int prop;
    fdt_for_each_property_offset(prop, fdt, node) {
      const char *pname;
      int len;
      const uint8_t *val = fdt_getprop_by_offset(fdt, prop, &pname, &len);
      if (!val) continue;
      sum += strlen(pname) + (uint64_t)len + (len ? val[0] : 0);
    }
  }
  return sum;
}

static void push(struct plan *p, enum op_kind kind, const char *name, const void *val, int len) {
  if (p->nops == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 256;
    p->ops = realloc(p->ops, p->cap * sizeof *p->ops);
    if (!p->ops) die("out of memory", "plan");
  }
  p->ops[p->nops++] = (struct op){kind, name, val, len};
}

/* Depth-first, properties before sub-nodes: the order the blob holds them in. */
static void plan_node(struct plan *p, const char *fdt, int node, int level) {
  if (level > 512) die("nesting too deep", "plan");
  push(p, OP_BEGIN, fdt_get_name(fdt, node, NULL), NULL, 0);
  int prop;
  fdt_for_each_property_offset(prop, fdt, node) {
    const char *pname;
    int len;
    const void *val = fdt_getprop_by_offset(fdt, prop, &pname, &len);
    push(p, OP_PROP, pname, val, len);
  }
  int child;
  fdt_for_each_subnode(child, fdt, node) plan_node(p, fdt, child, level + 1);
  push(p, OP_END, NULL, NULL, 0);
}

/* Read-write build: fdt_create_empty_tree, fdt_add_mem_rsv, then fdt_setprop / fdt_add_subnode.
 * libfdt inserts a new property before the node's others and a new sub-node before its existing
 * sub-nodes, so each node's properties and sub-nodes are added last to first to keep blob order. */
static int rw_build(char *buf, const struct op *ops, size_t *i, int node) {
  /* ops[*i] is this node's OP_BEGIN; find its props and direct children. */
  size_t first = *i + 1, j = first;
  while (ops[j].kind == OP_PROP) j++;
  size_t nprops = j - first;
  size_t kids[4096];
  size_t nkids = 0;
  while (ops[j].kind == OP_BEGIN) {
    if (nkids < 4096) kids[nkids++] = j;
    int depth = 0;
    do {
      if (ops[j].kind == OP_BEGIN) depth++;
      else if (ops[j].kind == OP_END) depth--;
      j++;
    } while (depth > 0);
  }
  *i = j + 1; /* past our OP_END */
  for (size_t k = nprops; k-- > 0;) {
    int err = fdt_setprop(buf, node, ops[first + k].name, ops[first + k].val, ops[first + k].len);
    if (err) return err;
  }
  for (size_t k = nkids; k-- > 0;) {
    int child = fdt_add_subnode(buf, node, ops[kids[k]].name);
    if (child < 0) return child;
    size_t at = kids[k];
    int err = rw_build(buf, ops, &at, child);
    if (err) return err;
  }
  return 0;
}

/* Bytes out, or 0 when libfdt refuses the tree (a sub-node name such as `memory` that libfdt's
 * unit-address-blind lookup finds already present as `memory@0`: FDT_ERR_EXISTS). */
static size_t encode_rw_one(struct plan *p) {
  if (p->rw_refused) return 0;
  char *buf = p->out;
  int err = fdt_create_empty_tree(buf, (int)p->bufsize);
  for (int i = 0; !err && i < p->nrsv; i++) err = fdt_add_mem_rsv(buf, p->rsv[2 * i], p->rsv[2 * i + 1]);
  size_t at = 0;
  if (!err) err = rw_build(buf, p->ops, &at, 0);
  if (!err) err = fdt_pack(buf);
  if (err == -FDT_ERR_EXISTS) {
    p->rw_refused = 1;
    return 0;
  }
  if (err) die(fdt_strerror(err), "encode-rw");
  return fdt_totalsize(buf);
}

static size_t encode_one(struct plan *p) {
  char *buf = p->out;
  int err = fdt_create(buf, (int)p->bufsize);
  for (int i = 0; !err && i < p->nrsv; i++) err = fdt_add_reservemap_entry(buf, p->rsv[2 * i], p->rsv[2 * i + 1]);
  if (!err) err = fdt_finish_reservemap(buf);
  for (size_t i = 0; !err && i < p->nops; i++) {
    const struct op *o = &p->ops[i];
    if (o->kind == OP_BEGIN)
      err = fdt_begin_node(buf, o->name);
    else if (o->kind == OP_PROP)
      err = fdt_property(buf, o->name, o->val, o->len);
    else
      err = fdt_end_node(buf);
  }
  if (!err) err = fdt_finish(buf);
  if (err) die(fdt_strerror(err), "encode");
  return fdt_totalsize(buf);
}

static struct blob *blobs;
static size_t nblobs, total_bytes;
static double times[100000];

struct timing {
  int passes;
  double median, best;
};

/* One warm-up pass (its result is the reference), then passes until min_s seconds and min_passes. */
static struct timing measure(size_t (*pass)(void *), void *arg, double min_s, int min_passes, size_t *result) {
  *result = pass(arg);
  int passes = 0;
  double start = now_ms();
  while (passes < 100000 && (passes < min_passes || now_ms() - start < min_s * 1e3)) {
    double t0 = now_ms();
    size_t r = pass(arg);
    times[passes++] = now_ms() - t0;
    if (r != *result) die("result changed between passes", "measure");
  }
  qsort(times, passes, sizeof *times, cmp_double);
  return (struct timing){passes, times[passes / 2], times[0]};
}

static size_t decode_pass(void *arg) {
  (void)arg;
  uint64_t s = 0;
  for (size_t i = 0; i < nblobs; i++) s += walk_one(blobs[i].data);
  return (size_t)s;
}

static size_t encode_pass(void *arg) {
  struct plan *plans = arg;
  size_t s = 0;
  for (size_t i = 0; i < nblobs; i++) s += encode_one(&plans[i]);
  return s;
}

static size_t rw_pass(void *arg) {
  struct plan *plans = arg;
  size_t s = 0;
  for (size_t i = 0; i < nblobs; i++) s += encode_rw_one(&plans[i]);
  return s;
}

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "decode") && strcmp(argv[1], "encode") && strcmp(argv[1], "rw"))) {
    fprintf(stderr, "usage: walk decode|encode|rw [MIN_SECONDS] < file-list\n");
    return 2;
  }
  const char *mode = argv[1];
  double min_s = argc > 2 ? atof(argv[2]) : 2.0;
  size_t cap = 0;
  char line[4096];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    if (!*line) continue;
    FILE *f = fopen(line, "rb");
    if (!f) die("cannot open", line);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc(size > 0 ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) die("cannot read", line);
    fclose(f);
    if (fdt_check_header(data) != 0) die("bad header", line);
    if (nblobs == cap) {
      cap = cap ? cap * 2 : 256;
      blobs = realloc(blobs, cap * sizeof *blobs);
      if (!blobs) die("out of memory", line);
    }
    blobs[nblobs++] = (struct blob){data, (size_t)size};
    total_bytes += (size_t)size;
  }

  struct timing t;
  size_t result;
  struct plan *plans = NULL;
  if (strcmp(mode, "decode") == 0) {
    t = measure(decode_pass, NULL, min_s, 5, &result);
  } else {
    plans = calloc(nblobs ? nblobs : 1, sizeof *plans);
    for (size_t i = 0; i < nblobs; i++) {
      const char *fdt = blobs[i].data;
      struct plan *p = &plans[i];
      p->nrsv = fdt_num_mem_rsv(fdt);
      p->rsv = calloc(p->nrsv > 0 ? 2 * (size_t)p->nrsv : 1, sizeof *p->rsv);
      for (int r = 0; r < p->nrsv; r++) fdt_get_mem_rsv(fdt, r, &p->rsv[2 * r], &p->rsv[2 * r + 1]);
      plan_node(p, fdt, 0, 0);
      p->bufsize = 2 * blobs[i].size + 4096;
      p->out = malloc(p->bufsize);
    }
    if (strcmp(mode, "encode") == 0)
      t = measure(encode_pass, plans, min_s, 5, &result);
    else
      t = measure(rw_pass, plans, min_s, 2, &result);
  }

  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"mode\":\"%s\",\"files\":%zu,\"bytes\":%zu,\"passes\":%d,\"medianMs\":%.4f,\"bestMs\":%.4f,"
         "\"result\":%zu,\"refused\":[",
         mode, nblobs, total_bytes, t.passes, t.median, t.best, result);
  const char *sep = "";
  for (size_t i = 0; plans && i < nblobs; i++)
    if (plans[i].rw_refused) {
      printf("%s%zu", sep, i);
      sep = ",";
    }
  printf("],\"maxRssKb\":%ld}\n", ru.ru_maxrss);
  return 0;
}
