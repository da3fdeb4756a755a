#include "textflag.h"

// The AVX2 forms of vec.go's kernels. Each works on 8 (bilerp, div) or 16
// (divBF16) float32 lanes per step, over n elements, n a multiple of that;
// the Go wrappers do the rest. Products and sums are separate instructions
// in the order of the plain Go forms, so that the results are bit for bit
// theirs.

// func bilerpAVX2(dst, a, b, c, d *float32, n int, w *[4]float32, add bool)
TEXT ·bilerpAVX2(SB), NOSPLIT, $0-57
	MOVQ    dst+0(FP), DI
	MOVQ    a+8(FP), R8
	MOVQ    b+16(FP), R9
	MOVQ    c+24(FP), R10
	MOVQ    d+32(FP), R11
	MOVQ    n+40(FP), CX
	MOVQ    w+48(FP), AX
	MOVBLZX add+56(FP), DX
	VBROADCASTSS 0(AX), Y0
	VBROADCASTSS 4(AX), Y1
	VBROADCASTSS 8(AX), Y2
	VBROADCASTSS 12(AX), Y3
	VXORPS  Y7, Y7, Y7
	XORQ    SI, SI
	TESTQ   DX, DX
	JNZ     addloop

setloop:
	CMPQ    SI, CX
	JGE     done
	VMULPS  (R8)(SI*4), Y0, Y4  // w0*a
	VMULPS  (R9)(SI*4), Y1, Y5  // w1*b
	VADDPS  Y5, Y4, Y4
	VMULPS  (R10)(SI*4), Y2, Y5 // w2*c
	VADDPS  Y5, Y4, Y4
	VMULPS  (R11)(SI*4), Y3, Y5 // w3*d
	VADDPS  Y5, Y4, Y4
	VADDPS  Y4, Y7, Y4          // 0 + t
	VMOVUPS Y4, (DI)(SI*4)
	ADDQ    $8, SI
	JMP     setloop

addloop:
	CMPQ    SI, CX
	JGE     done
	VMULPS  (R8)(SI*4), Y0, Y4
	VMULPS  (R9)(SI*4), Y1, Y5
	VADDPS  Y5, Y4, Y4
	VMULPS  (R10)(SI*4), Y2, Y5
	VADDPS  Y5, Y4, Y4
	VMULPS  (R11)(SI*4), Y3, Y5
	VADDPS  Y5, Y4, Y4
	VMOVUPS (DI)(SI*4), Y6
	VADDPS  Y4, Y6, Y4          // dst + t
	VMOVUPS Y4, (DI)(SI*4)
	ADDQ    $8, SI
	JMP     addloop

done:
	VZEROUPPER
	RET

// func divAVX2(dst, src *float32, n int, q float32, mul bool)
TEXT ·divAVX2(SB), NOSPLIT, $0-29
	MOVQ    dst+0(FP), DI
	MOVQ    src+8(FP), SI
	MOVQ    n+16(FP), CX
	VBROADCASTSS q+24(FP), Y0
	MOVBLZX mul+28(FP), DX
	XORQ    AX, AX
	TESTQ   DX, DX
	JNZ     divmulloop

divloop:
	CMPQ    AX, CX
	JGE     divdone
	VMOVUPS (SI)(AX*4), Y1
	VDIVPS  Y0, Y1, Y1          // src / q
	VMOVUPS Y1, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     divloop

divmulloop:
	CMPQ    AX, CX
	JGE     divdone
	VMULPS  (SI)(AX*4), Y0, Y1  // src * (1/q)
	VMOVUPS Y1, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     divmulloop

divdone:
	VZEROUPPER
	RET

// func addMulDivAVX2(dst, x *float32, n int, w, q float32, mul bool)
TEXT ·addMulDivAVX2(SB), NOSPLIT, $0-33
	MOVQ    dst+0(FP), DI
	MOVQ    x+8(FP), SI
	MOVQ    n+16(FP), CX
	VBROADCASTSS w+24(FP), Y0
	VBROADCASTSS q+28(FP), Y1
	MOVBLZX mul+32(FP), DX
	XORQ    AX, AX
	TESTQ   DX, DX
	JNZ     mulloop

amdloop:
	CMPQ    AX, CX
	JGE     amddone
	VMULPS  (SI)(AX*4), Y0, Y2  // x*w
	VDIVPS  Y1, Y2, Y2          // / q
	VMOVUPS (DI)(AX*4), Y3
	VADDPS  Y2, Y3, Y2          // dst + (first operand dst, as dst += t)
	VMOVUPS Y2, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     amdloop

mulloop:
	CMPQ    AX, CX
	JGE     amddone
	VMULPS  (SI)(AX*4), Y0, Y2  // x*w
	VMULPS  Y1, Y2, Y2          // * (1/q)
	VMOVUPS (DI)(AX*4), Y3
	VADDPS  Y2, Y3, Y2
	VMOVUPS Y2, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     mulloop

amddone:
	VZEROUPPER
	RET

DATA bf16c<>+0(SB)/4, $0x00007fff  // rounding bias
DATA bf16c<>+4(SB)/4, $0x00000001  // lowest kept bit
DATA bf16c<>+8(SB)/4, $0x7fffffff  // magnitude mask
DATA bf16c<>+12(SB)/4, $0x7f800000 // infinity: larger magnitudes are NaNs
DATA bf16c<>+16(SB)/4, $0x00000040 // a bf16 NaN's quiet bit
GLOBL bf16c<>(SB), RODATA|NOPTR, $20

// round16 sets the 32-bit lanes of y to RoundBF16 of the float32 lanes of
// x (in the low 16 bits; the high bits zero), using t and u as scratch and
// the constants in Y8-Y12.
#define ROUND16(x, y, t, u) \
	VPSRLD   $16, x, t;    \
	VPAND    Y9, t, y;     \
	VPADDD   Y8, y, y;     \
	VPADDD   x, y, y;      \
	VPSRLD   $16, y, y;    \
	VPOR     Y12, t, t;    \
	VPAND    Y10, x, u;    \
	VPCMPGTD Y11, u, u;    \
	VPBLENDVB u, t, y, y

// func divBF16AVX2(dst *uint16, src *float32, n int, q float32, mul bool)
TEXT ·divBF16AVX2(SB), NOSPLIT, $0-29
	MOVQ    dst+0(FP), DI
	MOVQ    src+8(FP), SI
	MOVQ    n+16(FP), CX
	VBROADCASTSS q+24(FP), Y0
	MOVBLZX mul+28(FP), DX
	VPBROADCASTD bf16c<>+0(SB), Y8
	VPBROADCASTD bf16c<>+4(SB), Y9
	VPBROADCASTD bf16c<>+8(SB), Y10
	VPBROADCASTD bf16c<>+12(SB), Y11
	VPBROADCASTD bf16c<>+16(SB), Y12
	XORQ    AX, AX

bf16loop:
	CMPQ    AX, CX
	JGE     bf16done
	VMOVUPS (SI)(AX*4), Y1
	VMOVUPS 32(SI)(AX*4), Y2
	TESTQ   DX, DX
	JNZ     bf16mul
	VDIVPS  Y0, Y1, Y1
	VDIVPS  Y0, Y2, Y2
	JMP     bf16round

bf16mul:
	VMULPS  Y0, Y1, Y1          // * (1/q)
	VMULPS  Y0, Y2, Y2

bf16round:
	ROUND16(Y1, Y3, Y5, Y6)
	ROUND16(Y2, Y4, Y5, Y6)
	VPACKUSDW Y4, Y3, Y3       // 128-bit lanes: [Y3 lo, Y4 lo], [Y3 hi, Y4 hi]
	VPERMQ  $0xd8, Y3, Y3      // -> Y3 lo, Y3 hi, Y4 lo, Y4 hi
	VMOVDQU Y3, (DI)(AX*2)
	ADDQ    $16, AX
	JMP     bf16loop

bf16done:
	VZEROUPPER
	RET

// func accumBF16AVX2(acc *float64, x *uint16, n int)
TEXT ·accumBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ    acc+0(FP), DI
	MOVQ    x+8(FP), SI
	MOVQ    n+16(FP), CX
	XORQ    AX, AX

accloop:
	CMPQ    AX, CX
	JGE     accdone
	VPMOVZXWD (SI)(AX*2), Y1    // 8 bf16 -> 8 dwords
	VPSLLD  $16, Y1, Y1         // -> their float32 bits
	VEXTRACTI128 $1, Y1, X3
	VCVTPS2PD X1, Y2            // lanes 0-3 as float64 (exact)
	VCVTPS2PD X3, Y3            // lanes 4-7
	VADDPD  (DI)(AX*8), Y2, Y2  // acc + x
	VADDPD  32(DI)(AX*8), Y3, Y3
	VMOVUPD Y2, (DI)(AX*8)
	VMOVUPD Y3, 32(DI)(AX*8)
	ADDQ    $8, AX
	JMP     accloop

accdone:
	VZEROUPPER
	RET
