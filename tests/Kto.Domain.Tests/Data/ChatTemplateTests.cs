using Kto.Domain.Data;

namespace Kto.Domain.Tests.Data;

public class ChatTemplateTests
{
    [Fact]
    public void PromptRendersEachMessageThenTheGenerationCue()
    {
        string text = ChatTemplate.RenderPrompt([new("system", "Be brief."), new("user", "Hi")]);
        Assert.Equal("system: Be brief.\nuser: Hi\nassistant: ", text);
    }

    [Fact]
    public void EmptyPromptIsTheCueAlone() => Assert.Equal("assistant: ", ChatTemplate.RenderPrompt([]));

    [Fact]
    public void CompletionIsTheAssistantContentThenLaterMessages()
    {
        Assert.Equal("Hello", ChatTemplate.RenderCompletion([new("assistant", "Hello")]));
        Assert.Equal("Let me check.\ntool: 42\nassistant: It is 42.",
            ChatTemplate.RenderCompletion([new("assistant", "Let me check."), new("tool", "42"), new("assistant", "It is 42.")]));
        Assert.Equal("", ChatTemplate.RenderCompletion([]));
    }

    [Fact]
    public void PromptPlusCompletionReadsAsOneTranscript() =>
        Assert.Equal("user: Hi\nassistant: Hello",
            ChatTemplate.RenderPrompt([new("user", "Hi")]) + ChatTemplate.RenderCompletion([new("assistant", "Hello")]));

    [Fact]
    public void CompletionMustStartWithTheAssistant() =>
        Assert.Throws<ArgumentException>(() => ChatTemplate.RenderCompletion([new("user", "Hi")]));
}
