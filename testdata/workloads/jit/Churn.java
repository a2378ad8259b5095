// Churn keeps the JIT busy with a large real code base: it compiles a Java
// source with the JDK's own compiler (javax.tools) in a loop, so the code
// cache fills with thousands of compiled javac methods, as in a service.
import javax.tools.ToolProvider;

public class Churn {
    public static void main(String[] args) throws Exception {
        var javac = ToolProvider.getSystemJavaCompiler();
        String out = System.getProperty("java.io.tmpdir") + "/churn-" + ProcessHandle.current().pid();
        new java.io.File(out).mkdirs();
        for (int i = 0; ; i++) {
            javac.run(null, null, null, "-d", out, args[0]);
            if (i == 20) {
                System.out.println("ready");
                System.out.flush();
            }
        }
    }
}
