// widget is a tiny C++ program for the demangling test of the symbolizer.
// Build: g++ -O2 -fno-omit-frame-pointer -no-pie -o widget widget.cc
#include <cstdio>

namespace demo {
template <typename T> struct Widget {
	__attribute__((noinline)) static T spin(T n)
	{
		volatile T x = 0;
		for (T i = 0; i < n; i++)
			x = x + i;
		return x;
	}
};
} // namespace demo

int main()
{
	std::printf("spin=%p\n", (void *)&demo::Widget<long>::spin);
	std::fflush(stdout);
	return (int)demo::Widget<long>::spin(10) & 1;
}
