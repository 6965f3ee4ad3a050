import torch

from colorseg.colour.palette import fit_palette, label_images, load_palette_and_digest, palette_to_image, save_palette


def brute_force_labels(rgb: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    out = torch.empty(rgb.shape[0], rgb.shape[2], rgb.shape[3], dtype=torch.long)
    for n in range(rgb.shape[0]):
        for y in range(rgb.shape[2]):
            for x in range(rgb.shape[3]):
                pixel = rgb[n, :, y, x].float() / 255.0
                distances = [float(((pixel - colour) ** 2).sum()) for colour in palette]
                out[n, y, x] = min(range(len(distances)), key=distances.__getitem__)
    return out


def test_labelling_equals_brute_force():
    generator = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (3, 3, 6, 5), dtype=torch.uint8, generator=generator)
    palette = torch.rand(24, 3, generator=generator)
    assert torch.equal(label_images(rgb, palette, chunk=2), brute_force_labels(rgb, palette))


def test_fit_is_deterministic_and_recovers_clusters():
    centres = torch.tensor([[10, 10, 10], [200, 30, 30], [30, 200, 30], [240, 240, 240]], dtype=torch.float32)
    generator = torch.Generator().manual_seed(1)
    pixels = centres[torch.randint(0, 4, (4000,), generator=generator)] + torch.randn(4000, 3, generator=generator)
    images = pixels.clamp(0, 255).to(torch.uint8).T.reshape(1, 3, 40, 100)
    first = fit_palette(images, num_colours=4, seed=0)
    second = fit_palette(images, num_colours=4, seed=0)
    assert torch.equal(first, second)
    recovered = sorted(map(tuple, (first * 255).round().tolist()))
    expected = sorted(map(tuple, centres.tolist()))
    for got, want in zip(recovered, expected):
        assert max(abs(a - b) for a, b in zip(got, want)) < 2


def test_save_load_round_trip(tmp_path):
    palette = torch.rand(24, 3)
    save_palette(palette, tmp_path, {"seed": 0})
    assert torch.equal(load_palette_and_digest(tmp_path)[0], palette)
    image = palette_to_image(torch.tensor([[[0, 23]]]), palette)
    assert image.shape == (1, 3, 1, 2) and torch.equal(image[0, :, 0, 1], palette[23])
