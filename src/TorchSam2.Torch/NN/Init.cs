namespace TorchSam2.Torch;

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>torch.nn.init: in-place initializers, run without gradient tracking.</summary>
        public static class init
        {
            public static Tensor uniform_(Tensor t, double a = 0, double b = 1)
            {
                using (no_grad()) return t.uniform_(a, b);
            }

            public static Tensor normal_(Tensor t, double mean = 0, double std = 1)
            {
                using (no_grad()) return t.normal_(mean, std);
            }

            public static Tensor zeros_(Tensor t)
            {
                using (no_grad()) return t.zero_();
            }

            public static Tensor ones_(Tensor t)
            {
                using (no_grad()) return t.fill_(1);
            }

            public static Tensor constant_(Tensor t, double v)
            {
                using (no_grad()) return t.fill_(v);
            }

            /// <summary>Normal(mean, std) redrawn inside [a, b], by the inverse-CDF method PyTorch uses.</summary>
            public static Tensor trunc_normal_(Tensor t, double mean = 0, double std = 1, double a = -2, double b = 2)
            {
                static double Cdf(double x) => (1 + Erf(x / Math.Sqrt(2))) / 2;
                using var _ = no_grad();
                using var scope = NewDisposeScope();
                double l = Cdf((a - mean) / std), u = Cdf((b - mean) / std);
                t.uniform_(2 * l - 1, 2 * u - 1);
                using var inv = Native.Op.Call("aten::erfinv", t);
                t.copy_(inv);
                t.mul_(std * Math.Sqrt(2)).add_(mean);
                t.clamp_(a, b);
                return t;
            }

            /// <summary>(fan_in, fan_out) as torch.nn.init._calculate_fan_in_and_fan_out.</summary>
            public static (long fanIn, long fanOut) CalculateFans(Tensor t)
            {
                var s = t.shape;
                if (s.Length < 2) throw new ArgumentException("fan in/out need at least 2 dimensions");
                long receptive = 1;
                for (int i = 2; i < s.Length; i++) receptive *= s[i];
                return (s[1] * receptive, s[0] * receptive);
            }

            /// <summary>kaiming_uniform_ with leaky-relu gain for slope a (PyTorch's default layer init uses a = √5).</summary>
            public static Tensor kaiming_uniform_(Tensor t, double a = 0)
            {
                var (fanIn, _) = CalculateFans(t);
                double gain = Math.Sqrt(2.0 / (1 + a * a));
                double bound = Math.Sqrt(3.0) * gain / Math.Sqrt(fanIn);
                return uniform_(t, -bound, bound);
            }

            public static Tensor xavier_uniform_(Tensor t, double gain = 1)
            {
                var (fanIn, fanOut) = CalculateFans(t);
                double bound = gain * Math.Sqrt(6.0 / (fanIn + fanOut));
                return uniform_(t, -bound, bound);
            }

            // Abramowitz-Stegun 7.1.26 is too coarse for the CDF bounds; use a series/continued fraction.
            private static double Erf(double x)
            {
                double t = 1.0 / (1.0 + 0.5 * Math.Abs(x));
                double y = 1 - t * Math.Exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
                return x >= 0 ? y : -y;
            }
        }
    }
}
