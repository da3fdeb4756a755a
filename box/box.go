package box

// Box is an axis-aligned box in absolute pixel coordinates of its image:
// XYXY, continuous, X1 <= X2, Y1 <= Y2, width = X2-X1 (no +1). See the
// package documentation for the convention. Box is a value: its methods
// return new values and never change the receiver.
type Box struct{ X1, Y1, X2, Y2 float32 }

// FromXYWH returns the box whose top-left corner is (x, y) and whose size is
// w x h, the COCO JSON layout.
func FromXYWH(x, y, w, h float32) Box { return Box{x, y, x + w, y + h} }

// XYWH returns the box as COCO's [x, y, w, h].
func (b Box) XYWH() [4]float32 { return [4]float32{b.X1, b.Y1, b.X2 - b.X1, b.Y2 - b.Y1} }

// Width returns X2-X1 (negative for an invalid box).
func (b Box) Width() float32 { return b.X2 - b.X1 }

// Height returns Y2-Y1 (negative for an invalid box).
func (b Box) Height() float32 { return b.Y2 - b.Y1 }

// Empty reports whether the box has no area: X2 <= X1 or Y2 <= Y1.
func (b Box) Empty() bool { return b.X2 <= b.X1 || b.Y2 <= b.Y1 }

// Area returns the box's area in square pixels, 0 for an empty box.
func (b Box) Area() float32 {
	if b.Empty() {
		return 0
	}
	return (b.X2 - b.X1) * (b.Y2 - b.Y1)
}

// Intersect returns the largest box contained in both b and c. If they do
// not overlap the result is Empty (and may have X2 < X1).
func (b Box) Intersect(c Box) Box {
	return Box{max(b.X1, c.X1), max(b.Y1, c.Y1), min(b.X2, c.X2), min(b.Y2, c.Y2)}
}

// IoU returns the intersection over union of b and c, in [0, 1]. It is 0 when
// the union is 0 (two empty boxes).
func (b Box) IoU(c Box) float32 {
	inter := b.Intersect(c).Area()
	if inter == 0 {
		return 0
	}
	union := b.Area() + c.Area() - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// Clip returns the box clamped to the image [0, w] x [0, h].
func (b Box) Clip(w, h float32) Box {
	return Box{clamp(b.X1, 0, w), clamp(b.Y1, 0, h), clamp(b.X2, 0, w), clamp(b.Y2, 0, h)}
}

// Scale returns the box with its x coordinates multiplied by sx and its y
// coordinates by sy, as when its image is resized by those factors.
func (b Box) Scale(sx, sy float32) Box { return Box{b.X1 * sx, b.Y1 * sy, b.X2 * sx, b.Y2 * sy} }

// FlipX returns the box mirrored in an image of width w (horizontal flip).
func (b Box) FlipX(w float32) Box { return Box{w - b.X2, b.Y1, w - b.X1, b.Y2} }

// Center returns the centre (cx, cy) of the box.
func (b Box) Center() (cx, cy float32) { return (b.X1 + b.X2) / 2, (b.Y1 + b.Y2) / 2 }

func clamp(v, lo, hi float32) float32 { return min(max(v, lo), hi) }
