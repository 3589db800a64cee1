// A line chart on a canvas, in the page's theme colours: three grid lines
// labelled at the right, the series drawn left to right. Both pages use it.

// drawSeries draws values (numbers, oldest first) on canvas cv, sized to its
// CSS box at the device's pixel ratio. fmt formats an axis label; colorVar
// names the CSS variable of the line's colour. Fewer than two values draw
// only an empty chart.
export function drawSeries(cv, values, { fmt = (v) => String(+v.toPrecision(8)), colorVar = '--chart', floor } = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(cv.clientWidth * dpr)), h = Math.max(1, Math.round(cv.clientHeight * dpr));
  if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; }
  const ctx = cv.getContext('2d');
  ctx.clearRect(0, 0, w, h);
  if (values.length < 2) return;
  const css = getComputedStyle(document.documentElement);
  const dim = css.getPropertyValue('--dim').trim() || '#888';
  const line = css.getPropertyValue(colorVar).trim() || '#58a6ff';
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (floor !== undefined) lo = Math.min(lo, floor);
  if (hi === lo) { hi += 0.5; lo -= floor === lo ? 0 : 0.5; }
  const padL = 4 * dpr, padR = 70 * dpr, padY = 10 * dpr;
  const n = values.length;
  const x = (i) => padL + i / (n - 1) * (w - padL - padR);
  const y = (v) => padY + (hi - v) / (hi - lo) * (h - 2 * padY);
  const ticks = [hi, (hi + lo) / 2, lo];
  ctx.font = `${11 * dpr}px system-ui, sans-serif`;
  ctx.fillStyle = dim;
  ctx.strokeStyle = dim;
  ctx.globalAlpha = 0.3;
  ctx.lineWidth = dpr;
  for (const v of ticks) {
    ctx.beginPath(); ctx.moveTo(padL, y(v)); ctx.lineTo(w - padR, y(v)); ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.textBaseline = 'middle';
  for (const v of ticks) ctx.fillText(fmt(v), w - padR + 6 * dpr, y(v));
  ctx.strokeStyle = line;
  ctx.lineWidth = 1.5 * dpr;
  ctx.beginPath();
  values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.stroke();
}
