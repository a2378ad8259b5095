// Spends CPU 6:3:1 across javaAlpha, javaBeta and javaGamma, which all
// call the shared hot method spin. spin's bytecode is larger than C2's
// FreqInlineSize (325 bytes), so it stays a frame of its own; the callers
// are compiled during a warm-up and then called rarely from main, which
// stays interpreted (its loops are too short to be compiled on stack).
public class JSplit {
    static long sink;

    static long spin(long n) {
        long x = 0;
        for (long i = 0; i < n; i++) {
            x = (x * 31 + i + 0) % 1000003;
            x = (x * 33 + i + 1) % 1000003;
            x = (x * 35 + i + 2) % 1000003;
            x = (x * 37 + i + 3) % 1000003;
            x = (x * 39 + i + 4) % 1000003;
            x = (x * 41 + i + 5) % 1000003;
            x = (x * 43 + i + 6) % 1000003;
            x = (x * 45 + i + 7) % 1000003;
            x = (x * 47 + i + 8) % 1000003;
            x = (x * 49 + i + 9) % 1000003;
            x = (x * 51 + i + 10) % 1000003;
            x = (x * 53 + i + 11) % 1000003;
            x = (x * 55 + i + 12) % 1000003;
            x = (x * 57 + i + 13) % 1000003;
            x = (x * 59 + i + 14) % 1000003;
            x = (x * 61 + i + 15) % 1000003;
            x = (x * 63 + i + 16) % 1000003;
            x = (x * 65 + i + 17) % 1000003;
            x = (x * 67 + i + 18) % 1000003;
            x = (x * 69 + i + 19) % 1000003;
            x = (x * 71 + i + 20) % 1000003;
            x = (x * 73 + i + 21) % 1000003;
            x = (x * 75 + i + 22) % 1000003;
            x = (x * 77 + i + 23) % 1000003;
        }
        return x;
    }

    static void javaAlpha(long scale) { sink += spin(6 * scale); }
    static void javaBeta(long scale) { sink += spin(3 * scale); }
    static void javaGamma(long scale) { sink += spin(scale); }

    public static void main(String[] args) {
        for (int i = 0; i < 20000; i++) {
            javaAlpha(1);
            javaBeta(1);
            javaGamma(1);
        }
        System.out.println("ready");
        System.out.flush();
        for (;;) {
            javaAlpha(20000);
            javaBeta(20000);
            javaGamma(20000);
        }
    }
}
