// Spends CPU 6:3:1 across js_alpha, js_beta and js_gamma, which all call
// the shared hot function spin. Each call runs long enough that the
// callers stay interpreted (JS:~) while spin is optimized (JS:*) on stack:
// the case where the interpreted callers are only visible through
// --interpreted-frames-native-stack.
function spin(n) {
  let x = 0;
  for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003;
  return x;
}
function js_alpha() { return spin(6000000); }
function js_beta() { return spin(3000000); }
function js_gamma() { return spin(1000000); }
console.log("ready");
let sink = 0;
for (;;) {
  sink += js_alpha();
  sink += js_beta();
  sink += js_gamma();
}
