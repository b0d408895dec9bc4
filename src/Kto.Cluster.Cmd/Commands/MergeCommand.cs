using System.CommandLine;
using Kto.Domain.Checkpoints;
using Kto.Domain.Model;

namespace Kto.Cluster.Cmd.Commands;

/// <summary><c>kto merge --model BASE --adapter DIR --out DIR</c>: a LoRA adapter folded into its base, saved as a whole checkpoint.</summary>
internal static class MergeCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "the base checkpoint", Required = true };
        var adapter = new Option<DirectoryInfo>("--adapter") { Description = "a PEFT LoRA adapter directory (ours or PEFT's)", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "directory of the merged checkpoint", Required = true };
        var cmd = new Command("merge", "fold a LoRA adapter into its base (W += scaling·B·A) and write a whole checkpoint in the base's layout, dtype and tokenizer files")
        {
            model, adapter, output,
        };
        cmd.SetAction(parse => CommonOptions.Guard(() =>
        {
            string baseDir = parse.GetValue(model)!.FullName, adapterDir = parse.GetValue(adapter)!.FullName, outDir = parse.GetValue(output)!.FullName;
            if (Path.GetFullPath(outDir) == Path.GetFullPath(baseDir)) throw new ArgumentException("--out must differ from --model (the base stays as it is)");
            using CausalLm merged = CommonOptions.LoadModel(baseDir, adapterDir, TorchSharp.torch.CPU);
            LoraAdapters.MergeInto(merged);
            ModelCheckpoint.Save(merged, outDir); // the base's parameters only, in the base's dtype, with its config and tokenizer files
            Console.WriteLine($"wrote {outDir}: {baseDir} with {adapterDir} merged, stored as {ModelCheckpoint.TorchDtypeName(merged.SourceDtype)}");
            return 0;
        }));
        return cmd;
    }
}
