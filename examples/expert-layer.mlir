// The expert half of a Mixtral-style MoE layer on 4 tokens, with a fixed
// routing: token 0 uses experts 0 and 2, token 1 expert 1, token 2 experts 2
// and 3, token 3 no expert. Rows are already dispatched (sorted by expert);
// the SwiGLU experts run as grouped matmuls and combine weights the results.
//
//   moec-opt expert-layer.mlir -moe-to-cpu-pipeline | mlir-runner -e main ...
//
// Inputs are synthetic: x[t, d] = cos(0.3 t + 0.1 d),
// w1[e, f, d] = 0.1 sin(e + 0.2 f + 0.05 d), w3 = 0.1 cos(same),
// w2[e, d, f] = 0.1 sin(0.5 e - 0.1 d + 0.15 f).

func.func private @printMemrefF32(tensor<*xf32>)

// 0.1 * sin(a*i + b*j + c*k + d) (or cos) over a 3-D tensor.
func.func @wave3(%init: tensor<?x?x?xf32>, %a: f32, %b: f32, %c: f32, %cos: i1)
    -> tensor<?x?x?xf32> {
  %r = linalg.generic {
      indexing_maps = [affine_map<(i, j, k) -> (i, j, k)>],
      iterator_types = ["parallel", "parallel", "parallel"]}
      outs(%init : tensor<?x?x?xf32>) {
  ^bb0(%out: f32):
    %i = linalg.index 0 : index
    %j = linalg.index 1 : index
    %k = linalg.index 2 : index
    %fi = arith.index_cast %i : index to i32
    %fj = arith.index_cast %j : index to i32
    %fk = arith.index_cast %k : index to i32
    %xi = arith.sitofp %fi : i32 to f32
    %xj = arith.sitofp %fj : i32 to f32
    %xk = arith.sitofp %fk : i32 to f32
    %ta = arith.mulf %a, %xi : f32
    %tb = arith.mulf %b, %xj : f32
    %tc = arith.mulf %c, %xk : f32
    %s0 = arith.addf %ta, %tb : f32
    %s1 = arith.addf %s0, %tc : f32
    %sin = math.sin %s1 : f32
    %cosv = math.cos %s1 : f32
    %v = arith.select %cos, %cosv, %sin : f32
    %tenth = arith.constant 0.1 : f32
    %y = arith.mulf %v, %tenth : f32
    linalg.yield %y : f32
  } -> tensor<?x?x?xf32>
  return %r : tensor<?x?x?xf32>
}

func.func @experts(%rows: tensor<?x8xf32>, %w1: tensor<4x16x8xf32>,
                   %w3: tensor<4x16x8xf32>, %w2: tensor<4x8x16xf32>,
                   %offsets: tensor<5xi32>, %weights: tensor<?x2xf32>,
                   %slots: tensor<?x2xi32>, %counts: tensor<?xi32>)
    -> tensor<?x8xf32> {
  %h = moe.grouped_matmul %rows, %w1, %w3 offsets(%offsets) epilogue(swiglu)
      : (tensor<?x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<5xi32>)
      -> tensor<?x16xf32>
  %y = moe.grouped_matmul %h, %w2 offsets(%offsets)
      : (tensor<?x16xf32>, tensor<4x8x16xf32>, tensor<5xi32>) -> tensor<?x8xf32>
  %out = moe.combine %y, %weights, %slots, %counts
      : (tensor<?x8xf32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>)
      -> tensor<?x8xf32>
  return %out : tensor<?x8xf32>
}

func.func @main() {
  %false = arith.constant false
  %true = arith.constant true
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  %p03 = arith.constant 0.3 : f32
  %p1 = arith.constant 0.1 : f32
  %p2 = arith.constant 0.2 : f32
  %p05 = arith.constant 0.05 : f32
  %p5 = arith.constant 0.5 : f32
  %m1 = arith.constant -0.1 : f32
  %p15 = arith.constant 0.15 : f32
  %one = arith.constant 1.0 : f32
  %ten = arith.constant 10.0 : f32

  // x[t, d] = cos(0.3 t + 0.1 d), as [1, 4, 8] then [4, 8] (undo the 0.1).
  %x0 = tensor.empty(%c1, %c4, %c8) : tensor<?x?x?xf32>
  %x1 = call @wave3(%x0, %zero, %p03, %p1, %true)
      : (tensor<?x?x?xf32>, f32, f32, f32, i1) -> tensor<?x?x?xf32>
  %x2 = tensor.collapse_shape %x1 [[0, 1], [2]] : tensor<?x?x?xf32> into tensor<?x?xf32>
  %x3 = linalg.generic {
      indexing_maps = [affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]}
      outs(%x2 : tensor<?x?xf32>) {
  ^bb0(%v: f32):
    %s = arith.mulf %v, %ten : f32
    linalg.yield %s : f32
  } -> tensor<?x?xf32>
  %x = tensor.cast %x3 : tensor<?x?xf32> to tensor<4x8xf32>

  %e1 = tensor.empty(%c4, %c16, %c8) : tensor<?x?x?xf32>
  %w1d = call @wave3(%e1, %one, %p2, %p05, %false)
      : (tensor<?x?x?xf32>, f32, f32, f32, i1) -> tensor<?x?x?xf32>
  %w3d = call @wave3(%e1, %one, %p2, %p05, %true)
      : (tensor<?x?x?xf32>, f32, f32, f32, i1) -> tensor<?x?x?xf32>
  %e2 = tensor.empty(%c4, %c8, %c16) : tensor<?x?x?xf32>
  %w2d = call @wave3(%e2, %p5, %m1, %p15, %false)
      : (tensor<?x?x?xf32>, f32, f32, f32, i1) -> tensor<?x?x?xf32>
  %w1 = tensor.cast %w1d : tensor<?x?x?xf32> to tensor<4x16x8xf32>
  %w3 = tensor.cast %w3d : tensor<?x?x?xf32> to tensor<4x16x8xf32>
  %w2 = tensor.cast %w2d : tensor<?x?x?xf32> to tensor<4x8x16xf32>

  // Dispatched rows: expert 0 gets token 0, expert 1 token 1, expert 2
  // tokens 0 and 2, expert 3 token 2.
  %row_to_token = arith.constant dense<[0, 1, 0, 2, 2]> : tensor<5xindex>
  %rows0 = tensor.generate {
  ^bb0(%r: index, %d: index):
    %t = tensor.extract %row_to_token[%r] : tensor<5xindex>
    %v = tensor.extract %x[%t, %d] : tensor<4x8xf32>
    tensor.yield %v : f32
  } : tensor<5x8xf32>
  %rows = tensor.cast %rows0 : tensor<5x8xf32> to tensor<?x8xf32>
  %offsets = arith.constant dense<[0, 1, 2, 4, 5]> : tensor<5xi32>
  %weights0 = arith.constant dense<[[0.6, 0.4], [1.0, 0.0], [0.7, 0.3], [0.0, 0.0]]> : tensor<4x2xf32>
  %slots0 = arith.constant dense<[[0, 2], [1, -1], [3, 4], [-1, -1]]> : tensor<4x2xi32>
  %counts0 = arith.constant dense<[2, 1, 2, 0]> : tensor<4xi32>
  %weights = tensor.cast %weights0 : tensor<4x2xf32> to tensor<?x2xf32>
  %slots = tensor.cast %slots0 : tensor<4x2xi32> to tensor<?x2xi32>
  %counts = tensor.cast %counts0 : tensor<4xi32> to tensor<?xi32>

  %out = call @experts(%rows, %w1, %w3, %w2, %offsets, %weights, %slots, %counts)
      : (tensor<?x8xf32>, tensor<4x16x8xf32>, tensor<4x16x8xf32>, tensor<4x8x16xf32>,
         tensor<5xi32>, tensor<?x2xf32>, tensor<?x2xi32>, tensor<?xi32>) -> tensor<?x8xf32>
  %printed = tensor.cast %out : tensor<?x8xf32> to tensor<*xf32>
  call @printMemrefF32(%printed) : (tensor<*xf32>) -> ()
  return
}
