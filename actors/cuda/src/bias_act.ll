; Source of bias_act.ptx (LLVM 14 IR, typed pointers). Regenerate with:
;   llc -O3 -march=nvptx64 -mcpu=sm_70 -mattr=+ptx70 src/bias_act.ll -o src/bias_act.ptx
; bias_act(y, b, n, cols, relu): for i < n: y[i] += b[i % cols]; if relu != 0: y[i] = max(y[i], 0)
target datalayout = "e-i64:64-i128:128-v16:16-v32:32-n16:32:64"
target triple = "nvptx64-nvidia-cuda"

declare i32 @llvm.nvvm.read.ptx.sreg.ctaid.x()
declare i32 @llvm.nvvm.read.ptx.sreg.ntid.x()
declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()

define void @bias_act(float addrspace(1)* %y, float addrspace(1)* %b, i32 %n, i32 %cols, i32 %relu) {
entry:
  %ctaid = call i32 @llvm.nvvm.read.ptx.sreg.ctaid.x()
  %ntid = call i32 @llvm.nvvm.read.ptx.sreg.ntid.x()
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %base = mul i32 %ctaid, %ntid
  %i = add i32 %base, %tid
  %inside = icmp ult i32 %i, %n
  br i1 %inside, label %body, label %done

body:
  %col = urem i32 %i, %cols
  %i64 = zext i32 %i to i64
  %col64 = zext i32 %col to i64
  %yp = getelementptr inbounds float, float addrspace(1)* %y, i64 %i64
  %bp = getelementptr inbounds float, float addrspace(1)* %b, i64 %col64
  %yv = load float, float addrspace(1)* %yp, align 4
  %bv = load float, float addrspace(1)* %bp, align 4
  %sum = fadd float %yv, %bv
  %want_relu = icmp ne i32 %relu, 0
  %positive = fcmp ogt float %sum, 0.0
  %clamped = select i1 %positive, float %sum, float 0.0
  %out = select i1 %want_relu, float %clamped, float %sum
  store float %out, float addrspace(1)* %yp, align 4
  br label %done

done:
  ret void
}

!nvvm.annotations = !{!0}
!0 = !{void (float addrspace(1)*, float addrspace(1)*, i32, i32, i32)* @bias_act, !"kernel", i32 1}
